// Package admission decides whether an image may be pulled or started by
// rules written in CEL over what is known about it: the image's name and
// config, its verified signatures, its SBOM and its vulnerability report.
//
// # Model
//
// A rules file is YAML in the style of a Kubernetes
// ValidatingAdmissionPolicy's validations:
//
//	rules:
//	  - name: no-critical-vulns              # unique, required
//	    matchConditions:                     # optional; all must hold for the rule to apply
//	      - name: prod
//	        expression: image.repository.startsWith("registry.example/prod/")
//	    expression: '!vulnerabilities.exists(v, v.severity == "critical")'
//	    message: critical vulnerabilities are refused
//	    messageExpression: '...'             # optional CEL string, preferred to message
//
// matchConditions may also be one CEL string. An image is admitted when
// every rule that applies holds. Load compiles and type-checks every
// expression (conditions and expressions must be bool, messageExpression
// string), so a rule that cannot work is refused when the file is read —
// with the file position, the rule's name and the position inside the
// expression — and never at a start.
//
// Rules see five variables:
//
//	image            reference, repository, tag, digest, created (timestamp),
//	                 labels (map), user, entrypoint, cmd, exposedPorts,
//	                 envNames (lists of strings)
//	signatures       list of {signer, identity, issuer}, verified by the caller
//	sbom             null when the image has none, else
//	                 {format, components: [{name, version, purl, type, licenses}]}
//	vulnerabilities  list of {id, severity, score, component, version}
//	vulnerabilityReport  true when a vulnerability report was attached, even
//	                 a clean one (vulnerabilities alone cannot tell)
//
// and, besides standard CEL, cel-go's strings, lists and sets extensions,
// optional values (image.labels[?"team"].orValue("")) and two version
// functions: compareVersions(a, b) (-1, 0, 1) and
// versionInRange(version, range) with ranges such as ">=3.0.0 <3.0.7" or
// "<1.2 || >=2.0.0, <2.0.4" (version.go documents the comparison).
//
// # Failing closed
//
// Evaluation never lets an image through because something went wrong: a
// rule whose condition, expression or helper errors (a missing map key, an
// unparsable version, the cost limit) refuses, with the error in its
// RuleResult. Each expression runs under a cost limit and the whole
// evaluation under a budget, so a hostile or careless rule file cannot hang
// a start; an expression that would exceed the limit for any image is
// refused at load; cancelling the context stops evaluation promptly.
//
// # Documents
//
// ParseSBOM and ParseVulnerabilities turn SPDX, CycloneDX and scanner
// reports into the values above. They read documents fetched from a
// registry, so they bound their size and counts and reject what they do not
// understand rather than read it as empty: a report that cannot be read must
// not look like a clean one. Verifying that a document was signed is the
// caller's job (package trust); this package trusts the Facts it is given.
package admission
