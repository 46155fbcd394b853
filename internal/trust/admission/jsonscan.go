package admission

import "fmt"

// maxDecodedElements bounds the entries of all the arrays (and maps) that
// the parsers decode into Go values, together. encoding/json allocates a
// whole struct for every element before a count could be checked
// afterwards, so a 32 MiB document of "{}," elements would cost gigabytes
// and seconds; checkJSONShape counts them in one pass over the bytes first.
// It leaves room for MaxComponents packages with a few references or
// licenses each.
const maxDecodedElements = 250_000

// decodedKeys are the JSON keys whose values the parsers decode into slices
// or maps, in lower case.
var decodedKeys = map[string]bool{
	"components": true, "packages": true, "externalrefs": true, "licenses": true,
	"vulnerabilities": true, "ratings": true, "affects": true, "results": true,
	"matches": true, "cvss": true, "runs": true, "rules": true, "tags": true,
	"scanners": true,
}

// checkJSONShape counts the elements of every array or object that is the
// value of one of decodedKeys, at any depth, without decoding. encoding/json
// matches keys case-insensitively, with Unicode folding (ſ is s, K is k),
// and after unescaping, so a key with an escape or a non-ASCII byte counts
// as decoded whatever it says. It does not validate the JSON; the decoder
// does that next.
func checkJSONShape(data []byte, what string) error {
	type frame struct{ counted, expectElement bool }
	var (
		stack       []frame
		elements    int
		key         [32]byte
		keyLen      int
		keyAny      bool // escaped, non-ASCII or long: may decode as any key
		afterString bool // the last token was a string: a ':' makes it a key
		valueOfKey  bool // the next token is the value of a decoded key
	)
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].expectElement && c != ']' && c != '}' {
			stack[n-1].expectElement = false
			if stack[n-1].counted {
				elements++
				if elements > maxDecodedElements {
					return fmt.Errorf("parse %s: more than %d list entries: %w", what, maxDecodedElements, ErrTooLarge)
				}
			}
		}
		switch c {
		case '"':
			keyLen, keyAny = 0, false
			for i++; i < len(data) && data[i] != '"'; i++ {
				b := data[i]
				switch {
				case b == '\\':
					keyAny = true
					i++
				case b >= 0x80 || keyLen == len(key):
					keyAny = true
				default:
					if b >= 'A' && b <= 'Z' {
						b += 'a' - 'A'
					}
					key[keyLen] = b
					keyLen++
				}
			}
			afterString, valueOfKey = true, false
			continue
		case ':':
			if afterString {
				valueOfKey = keyAny || decodedKeys[string(key[:keyLen])]
			}
			afterString = false
			continue
		case '[', '{':
			stack = append(stack, frame{counted: valueOfKey, expectElement: true})
		case ']', '}':
			if n := len(stack); n > 0 {
				stack = stack[:n-1]
			}
		case ',':
			if n := len(stack); n > 0 {
				stack[n-1].expectElement = true
			}
		}
		afterString, valueOfKey = false, false
	}
	return nil
}
