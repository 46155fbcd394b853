package admission

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxMessageLength bounds a deny message. Messages reach terminals, events
// and the audit log, and a messageExpression can quote what the image says
// about itself (labels, SBOM versions), so they are cut and cleaned.
const maxMessageLength = 1024

// cleanMessage escapes control characters (a label with "\x1b]..." must not
// drive the terminal Berth prints to, nor a newline forge a second log line)
// and Unicode bidirectional overrides, then cuts the message to
// maxMessageLength bytes on a character boundary.
func cleanMessage(s string) string {
	s = escapeUnsafe(s)
	if len(s) > maxMessageLength {
		cut := maxMessageLength
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func escapeUnsafe(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		r == '\u2028' || r == '\u2029'
}

// checkName refuses rule names that would be confusing or unsafe where they
// are printed; they are free text otherwise, as Kubernetes' are.
func checkName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("the name is longer than 253 bytes")
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("the name %q starts or ends with white space", name)
	}
	if i := strings.IndexFunc(name, unsafeRune); i >= 0 {
		return fmt.Errorf("the name %q has a control character", name)
	}
	return nil
}
