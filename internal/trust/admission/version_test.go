package admission

import "testing"

func TestCompareVersions(t *testing.T) {
	ordered := [][]string{
		{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"},
		{"1.1.1", "1.1.1a", "1.1.1n", "1.1.2", "3.0.0", "3.0.6-r1", "3.0.6", "3.0.7-r0", "3.0.7", "3.0.10", "3.1"},
		{"0.9", "v1.2", "1.10", "2:0.1"},
		{"99999999999999999999.0", "100000000000000000000.0"},
	}
	for _, list := range ordered {
		for i := 0; i+1 < len(list); i++ {
			if c, err := compareVersions(list[i], list[i+1]); err != nil || c != -1 {
				t.Errorf("compare(%s, %s) = %d, %v; want -1", list[i], list[i+1], c, err)
			}
			if c, _ := compareVersions(list[i+1], list[i]); c != 1 {
				t.Errorf("compare(%s, %s) = %d; want 1", list[i+1], list[i], c)
			}
		}
	}
	for _, eq := range [][2]string{{"3.0", "3.0.0"}, {"v1.2.3", "1.2.3"}, {"1.2.3+build.5", "1.2.3"}, {"01.2", "1.2"}, {"0:1.0", "1.0"}} {
		if c, err := compareVersions(eq[0], eq[1]); err != nil || c != 0 {
			t.Errorf("compare(%s, %s) = %d, %v; want 0", eq[0], eq[1], c, err)
		}
	}
	for _, bad := range []string{"", "latest", "1.x", "-1", "1.0-", "a:1.0"} {
		if _, err := compareVersions(bad, "1.0"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestVersionInRange(t *testing.T) {
	cases := []struct {
		v, r string
		want bool
	}{
		{"3.0.1", ">=3.0.0 <3.0.7", true},
		{"3.0.0", ">=3.0.0 <3.0.7", true},
		{"3.0.7", ">=3.0.0 <3.0.7", false},
		{"2.9.9", ">=3.0.0 <3.0.7", false},
		{"3.0.1", ">= 3.0.0, < 3.0.7", true},
		{"1.1.1n", "<1.1.1t || >=3.0.0 <3.0.7", true},
		{"1.1.1t", "<1.1.1t || >=3.0.0 <3.0.7", false},
		{"1.2.3", "1.2.3", true},
		{"1.2.3", "==1.2.3", true},
		{"1.2.4", "=1.2.3", false},
		{"1.2.4", "!=1.2.3", true},
		{"2.0", ">1.9 <=2.0", true},
	}
	for _, tc := range cases {
		got, err := versionInRange(tc.v, tc.r)
		if err != nil || got != tc.want {
			t.Errorf("versionInRange(%q, %q) = %v, %v; want %v", tc.v, tc.r, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "||", ">=", ">= >=1", ">=x", "1.0 || "} {
		if _, err := versionInRange("1.0", bad); err == nil {
			t.Errorf("range %q parsed", bad)
		}
	}
}
