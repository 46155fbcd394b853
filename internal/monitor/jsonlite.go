package monitor

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON codec for the monitor process's own reading and writing
// (its Config, its Status, requests and replies, the runtime's log lines).
// encoding/json and the reflection it drives add about 0.5 MB to every
// monitor's resident memory; the engine's side of the package keeps
// using encoding/json, and tests hold the two to the same encoding.

// maxJSONDepth bounds nesting, so a hostile document cannot exhaust the
// stack.
const maxJSONDepth = 32

var errJSON = errors.New("invalid JSON")

// parseJSON decodes data into map[string]any, []any, string, bool, nil,
// or jsonNumber (the number's text, converted where a field is known).
func parseJSON(data []byte) (any, error) {
	p := jsonParser{data: data}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.errorf("trailing data")
	}
	return v, nil
}

type jsonNumber string

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, a ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errJSON, p.pos, fmt.Sprintf(format, a...))
}

func (p *jsonParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, p.errorf("nested deeper than %d", maxJSONDepth)
	}
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *jsonParser) literal(s string) error {
	if len(p.data)-p.pos < len(s) || string(p.data[p.pos:p.pos+len(s)]) != s {
		return p.errorf("expected %s", s)
	}
	p.pos += len(s)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	m := map[string]any{}
	p.pos++ // {
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected a member name")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.pos++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	var a []any
	p.pos++ // [
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}

func (p *jsonParser) number() (any, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if digits() == 0 {
		return nil, p.errorf("malformed number")
	}
	if p.data[intStart] == '0' && p.pos-intStart > 1 {
		return nil, p.errorf("number with a leading zero")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	return jsonNumber(p.data[start:p.pos]), nil
}

func (p *jsonParser) str() (string, error) {
	p.pos++ // "
	var b []byte
	for {
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c == '\\':
			if p.pos+1 >= len(p.data) {
				return "", p.errorf("unterminated escape")
			}
			e := p.data[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errorf("malformed \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
						save := p.pos
						p.pos += 2
						var ok2 bool
						if r2, ok2 = p.hex4(); !ok2 {
							return "", p.errorf("malformed \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
						} else {
							p.pos = save // not a pair: the second escape stands alone
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", p.errorf("unknown escape \\%c", e)
			}
		default:
			// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, p.data[p.pos:p.pos+size]...)
			}
			p.pos += size
		}
	}
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(v), true
}

// jsonObject reads typed members of a decoded object, remembering the
// first type error.
type jsonObject struct {
	m    map[string]any
	name string // for errors: what object this is
	err  error
}

func asObject(v any, name string) (*jsonObject, error) {
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("%w: %s is not an object", errJSON, name)
	}
	return &jsonObject{m: m, name: name}, nil
}

func (o *jsonObject) fail(key, want string) {
	if o.err == nil {
		o.err = fmt.Errorf("%w: %s.%s is not %s", errJSON, o.name, key, want)
	}
}

func (o *jsonObject) str(key string) string {
	switch v := o.m[key].(type) {
	case nil:
	case string:
		return v
	default:
		o.fail(key, "a string")
	}
	return ""
}

func (o *jsonObject) boolean(key string) bool {
	switch v := o.m[key].(type) {
	case nil:
	case bool:
		return v
	default:
		o.fail(key, "a boolean")
	}
	return false
}

func (o *jsonObject) int64(key string) int64 {
	switch v := o.m[key].(type) {
	case nil:
	case jsonNumber:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			o.fail(key, "an integer")
		}
		return n
	default:
		o.fail(key, "a number")
	}
	return 0
}

func (o *jsonObject) strings(key string) []string {
	switch v := o.m[key].(type) {
	case nil:
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				o.fail(key, "a list of strings")
				return nil
			}
			out = append(out, s)
		}
		return out
	default:
		o.fail(key, "a list of strings")
	}
	return nil
}

func (o *jsonObject) object(key string) *jsonObject {
	sub, err := asObject(o.m[key], o.name+"."+key)
	if err != nil {
		if o.err == nil {
			o.err = err
		}
		return &jsonObject{name: key}
	}
	return sub
}

func (o *jsonObject) time(key string) time.Time {
	s := o.str(key)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		o.fail(key, "an RFC 3339 time")
	}
	return t
}

// decodeConfig decodes a Config as encoding/json would.
func decodeConfig(data []byte) (Config, error) {
	var c Config
	v, err := parseJSON(data)
	if err != nil {
		return c, err
	}
	o, err := asObject(v, "config")
	if err != nil {
		return c, err
	}
	c.ID = o.str("id")
	c.Runtime = o.str("runtime")
	c.RuntimeRoot = o.str("runtimeRoot")
	c.RuntimeArgs = o.strings("runtimeArgs")
	c.Bundle = o.str("bundle")
	c.Terminal = o.boolean("terminal")
	c.Stdin = o.boolean("stdin")
	c.LogPath = o.str("logPath")
	c.LogMaxSize = o.int64("logMaxSize")
	c.LogMaxFiles = int(o.int64("logMaxFiles"))
	c.StateDir = o.str("stateDir")
	c.ExitFile = o.str("exitFile")
	c.OOMFiles = o.strings("oomFiles")
	c.OOMParentFiles = o.strings("oomParentFiles")
	c.ExitCommand = o.strings("exitCommand")
	c.RuntimeWait = o.boolean("runtimeWait")
	c.StartAtOnce = o.boolean("startAtOnce")
	if v, ok := o.m["health"]; ok && v != nil {
		h := o.object("health")
		c.Health = &HealthConfig{
			ProcessFile: h.str("processFile"),
			Interval:    time.Duration(h.int64("interval")),
			Timeout:     time.Duration(h.int64("timeout")),
			StartPeriod: time.Duration(h.int64("startPeriod")),
			Retries:     int(h.int64("retries")),
		}
		if h.err != nil {
			return c, h.err
		}
	}
	r := o.object("restart")
	c.Restart.Name = r.str("name")
	c.Restart.MaxRetries = int(r.int64("maxRetries"))
	if r.err != nil {
		return c, r.err
	}
	return c, o.err
}

// decodeStatus decodes a Status as encoding/json would.
func decodeStatus(v any) (Status, error) {
	var st Status
	o, err := asObject(v, "status")
	if err != nil {
		return st, err
	}
	st.State = o.str("state")
	st.Pid = int(o.int64("pid"))
	st.MonitorPid = int(o.int64("monitorPid"))
	st.ExitCode = int(o.int64("exitCode"))
	st.OOMKilled = o.boolean("oomKilled")
	st.Error = o.str("error")
	st.StartedAt = o.time("startedAt")
	st.FinishedAt = o.time("finishedAt")
	st.RestartCount = int(o.int64("restartCount"))
	st.StoppedByUser = o.boolean("stoppedByUser")
	return st, o.err
}

// appendJSONString appends s as a JSON string, as encoding/json writes it
// (HTML characters escaped, invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// jsonWriter builds one JSON object.
type jsonWriter struct{ b []byte }

func (w *jsonWriter) key(k string) {
	if len(w.b) == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *jsonWriter) str(k, v string) { w.key(k); w.b = appendJSONString(w.b, v) }
func (w *jsonWriter) int(k string, v int) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}
func (w *jsonWriter) boolean(k string, v bool) { w.key(k); w.b = strconv.AppendBool(w.b, v) }
func (w *jsonWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}
func (w *jsonWriter) raw(k string, v []byte) { w.key(k); w.b = append(w.b, v...) }

func (w *jsonWriter) done() []byte {
	if len(w.b) == 0 {
		return []byte("{}")
	}
	return append(w.b, '}')
}

// encodeStatus encodes st as encoding/json would.
func encodeStatus(st Status) []byte {
	var w jsonWriter
	w.str("state", st.State)
	w.int("pid", st.Pid)
	w.int("monitorPid", st.MonitorPid)
	w.int("exitCode", st.ExitCode)
	w.boolean("oomKilled", st.OOMKilled)
	if st.Error != "" {
		w.str("error", st.Error)
	}
	w.time("startedAt", st.StartedAt)
	w.time("finishedAt", st.FinishedAt)
	w.int("restartCount", st.RestartCount)
	if st.StoppedByUser {
		w.boolean("stoppedByUser", true)
	}
	return w.done()
}

// encodeReply encodes r as encoding/json would.
func encodeReply(r reply) []byte {
	var w jsonWriter
	if r.Status != nil {
		w.raw("status", encodeStatus(*r.Status))
	}
	if r.Terminal {
		w.boolean("terminal", true)
	}
	if r.Error != "" {
		w.str("error", r.Error)
	}
	return w.done()
}
