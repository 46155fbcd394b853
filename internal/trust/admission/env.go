package admission

import (
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
)

// Limits that keep a hostile rules file from hanging or exhausting a start.
// The cost unit is cel-go's: roughly one per operation, one per element
// visited by a comprehension, and by length for string operations.
const (
	// MaxRulesFileSize bounds the rules file.
	MaxRulesFileSize = 1 << 20
	// MaxRules bounds the number of rules in one file.
	MaxRules = 512
	// MaxExpressionLength bounds one CEL expression, in code points.
	MaxExpressionLength = 16 << 10
	// ExpressionCostLimit stops one expression; Kubernetes uses the same
	// per-call limit for its validation rules.
	ExpressionCostLimit = 1_000_000
	// EvaluationCostBudget stops one Evaluate over all rules: once spent,
	// the remaining rules fail closed. The worst rules found (nested
	// lists.range) spend it in about a second on this project's test machine.
	EvaluationCostBudget = 5_000_000
	// maxListsRange bounds lists.range(n).
	maxListsRange = 10_000
	// interruptEvery is how many comprehension iterations pass between
	// checks of the context, so a cancelled start stops promptly.
	interruptEvery = 100
)

// CEL type names of the facts, as ext.NativeTypes names Go structs.
const (
	celImage         = "admission.ImageFacts"
	celSignature     = "admission.Signature"
	celSBOM          = "admission.SBOM"
	celVulnerability = "admission.Vulnerability"
)

// newEnv builds the CEL environment rules compile in: the five variables,
// the standard macros, cel-go's strings, lists and sets extensions,
// optional values, and
// the version functions (compareVersions, versionInRange) of version.go.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(
			reflect.TypeFor[ImageFacts](),
			reflect.TypeFor[Signature](),
			reflect.TypeFor[SBOM](),
			reflect.TypeFor[Component](),
			reflect.TypeFor[Vulnerability](),
			ext.ParseStructTags(true),
		),
		cel.Variable("image", cel.ObjectType(celImage)),
		cel.Variable("signatures", cel.ListType(cel.ObjectType(celSignature))),
		cel.Variable("sbom", cel.ObjectType(celSBOM)),
		cel.Variable("vulnerabilities", cel.ListType(cel.ObjectType(celVulnerability))),
		cel.Variable("vulnerabilityReport", cel.BoolType),
		ext.Strings(),
		ext.Lists(ext.ListsMaxRangeSize(maxListsRange)),
		ext.Sets(),
		// Optional values let a rule read a label that may be missing
		// (image.labels[?"team"].orValue("")) without failing closed.
		cel.OptionalTypes(),
		cel.ParserExpressionSizeLimit(MaxExpressionLength),
		cel.Function("versionInRange",
			cel.Overload("versionInRange_string_string",
				[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(v, r ref.Val) ref.Val {
					ok, err := versionInRange(string(v.(types.String)), string(r.(types.String)))
					if err != nil {
						return types.WrapErr(err)
					}
					return types.Bool(ok)
				}))),
		cel.Function("compareVersions",
			cel.Overload("compareVersions_string_string",
				[]*cel.Type{cel.StringType, cel.StringType}, cel.IntType,
				cel.BinaryBinding(func(a, b ref.Val) ref.Val {
					c, err := compareVersions(string(a.(types.String)), string(b.(types.String)))
					if err != nil {
						return types.WrapErr(err)
					}
					return types.Int(c)
				}))),
	)
}
