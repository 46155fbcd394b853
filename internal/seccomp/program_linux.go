//go:build cgo

package seccomp

import "github.com/berth-project/berth/internal/seccomp/filter"

// Program is a compiled filter, ready to be installed by its Load. It lives
// in package filter, which the container init's binary imports without
// libseccomp.
type Program = filter.Program

// ProgramFormat names the encoding of Program.MarshalBinary, for keys of
// caches of marshalled programs.
const ProgramFormat = filter.Format

// UnmarshalProgram decodes what Program.MarshalBinary produced.
func UnmarshalProgram(data []byte) (*Program, error) { return filter.Unmarshal(data) }
