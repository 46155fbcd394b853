package cri

import (
	"os"
	"slices"
	"testing"
)

func TestParseStatusUser(t *testing.T) {
	u, ok := parseStatusUser([]byte("Name:\tsh\nUid:\t1000\t1001\t1001\t1001\nGid:\t50\t60\t60\t60\nGroups:\t10 20 \n"))
	if !ok || u.Uid != 1001 || u.Gid != 60 || !slices.Equal(u.SupplementalGroups, []int64{10, 20}) {
		t.Fatalf("parseStatusUser = %+v, %v; want uid 1001 gid 60 groups [10 20]", u, ok)
	}
	for _, bad := range []string{"Uid:\t1\n", "Uid:\tx y\nGid:\t1 1\n", "Uid:\t1 1\nGid:\t1 1\nGroups:\ta\n", ""} {
		if u, ok := parseStatusUser([]byte(bad)); ok {
			t.Errorf("parseStatusUser(%q) = %+v, want refused", bad, u)
		}
	}
	if u := processUser(os.Getpid()); u == nil || u.Linux.Uid != int64(os.Geteuid()) {
		t.Errorf("processUser(self) = %+v", u)
	}
}

func FuzzParseStatusUser(f *testing.F) {
	f.Add([]byte("Uid:\t0 0 0 0\nGid:\t0 0 0 0\nGroups:\t1 2\n"))
	f.Add([]byte("Groups:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, ok := parseStatusUser(b); ok && u == nil {
			t.Fatal("ok without a user")
		}
	})
}
