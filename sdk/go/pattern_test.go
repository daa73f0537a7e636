package strowger

import "testing"

func TestAsteriskPatterns(t *testing.T) {
	cases := []struct {
		pattern, number string
		want            bool
	}{
		{"_90.", "901133334444", true},
		{"_90.", "90", false}, // "." needs at least one more character
		{"_90!", "90", true},
		{"_90!", "9011", true},
		{"_NXXNXXXXXX", "2125551234", true},
		{"_NXXNXXXXXX", "1125551234", false},
		{"_NXXNXXXXXX", "21255512345", false},
		{"_Z", "0", false},
		{"_z", "7", true},
		{"_[1-5]XX", "512", true},
		{"_[1-5]XX", "612", false},
		{"_[137]", "3", true},
		{"_[137]", "2", false},
		{"_[1-35-7]X", "62", true},
		{"_[1-35-7]X", "42", false},
		{"_0800-XXX-XXXX", "08001234567", true},
		{"_+55.", "+551133334444", true},
		{"1001", "1001", true},
		{"1001", "10011", false},
		{"_X.", "", false},
	}
	for _, c := range cases {
		p, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := p.Match(c.number); got != c.want {
			t.Errorf("%s ~ %s = %v, want %v", c.pattern, c.number, got, c.want)
		}
	}
}

func TestBadPatterns(t *testing.T) {
	for _, s := range []string{"_", "_[12", "_12]", "_[]", "_9.1", "_[9-1]"} {
		if _, err := CompilePattern(s); err == nil {
			t.Errorf("%q compiled", s)
		}
	}
}

func TestBestMatchAsteriskOrder(t *testing.T) {
	src := []string{"_X.", "_9!", "_9.", "_91XX", "_9[1-2]XX", "9100", "_91[0-5]X"}
	var ps []*Pattern
	for _, s := range src {
		ps = append(ps, MustCompilePattern(s))
	}
	cases := map[string]string{
		"9100":  "9100",
		"9123":  "_91[0-5]X",
		"9163":  "_91XX",
		"9263":  "_9[1-2]XX",
		"95555": "_9.",
		"9":     "_9!",
		"55":    "_X.",
	}
	for number, want := range cases {
		i := BestMatch(ps, number)
		if i < 0 || src[i] != want {
			got := "none"
			if i >= 0 {
				got = src[i]
			}
			t.Errorf("%s: best %s, want %s", number, got, want)
		}
	}
	if BestMatch(ps, "") != -1 {
		t.Errorf("empty number matched")
	}
}

func TestFreePBXDialPatterns(t *testing.T) {
	cases := []struct {
		pattern, number, caller, want string
		ok                            bool
	}{
		{"9|NXXNXXXXXX", "92125551234", "", "2125551234", true},
		{"9|NXXNXXXXXX", "2125551234", "", "", false},
		{"1+NXXNXXXXXX", "2125551234", "", "12125551234", true},
		{"0055+0|XXXXXXXXXX", "01133334444", "", "00551133334444", true},
		{"|1NXXNXXXXXX/1001", "12125551234", "1001", "12125551234", true},
		{"|1NXXNXXXXXX/1001", "12125551234", "1002", "", false},
		{"|./10XX", "5", "1099", "5", true},
		{"00|.", "00351211234567", "", "351211234567", true},
		{"55+0|XX.", "011999", "", "5511999", true},
	}
	for _, c := range cases {
		d, err := ParseDialPattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		got, ok := d.Apply(c.number, c.caller)
		if ok != c.ok || got != c.want {
			t.Errorf("%s on %s/%s = %q,%v want %q,%v", c.pattern, c.number, c.caller, got, ok, c.want, c.ok)
		}
	}
	if _, err := ParseDialPattern("9|[12"); err == nil {
		t.Error("bad match pattern accepted")
	}
}

func TestSubst(t *testing.T) {
	cases := []struct {
		expr, in, want string
		ok             bool
	}{
		{"/^0([1-9][0-9])/+55$1/", "01133334444", "+551133334444", true},
		{`/^\+55(.*)$/0\1/`, "+551133334444", "01133334444", true},
		{"/^00/+/", "0044", "+44", true},
		{"/^00/+/", "44", "44", false},
		{"/a/b/g", "banana", "bbnbnb", true},
		{"/a/b/", "banana", "bbnana", true},
		{"/A/b/gi", "bAnana", "bbnbnb", true},
		{"#^sip:(.*)@.*#$1#", "sip:1001@pbx", "1001", true},
		{`/^(?P<area>\d\d)(\d+)$/0${area}-$2/`, "1133334444", "011-33334444", true},
		{`/\//-/g`, "a/b", "a-b", true},
	}
	for _, c := range cases {
		s, err := ParseSubst(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		got, ok := s.Apply(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%s on %s = %q,%v want %q,%v", c.expr, c.in, got, ok, c.want, c.ok)
		}
	}
	for _, bad := range []string{"", "/a/", "/a/b", "/(/x/", "/a/$2/", "/a/b/x"} {
		if _, err := ParseSubst(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReplacePrefix(t *testing.T) {
	if n, ok := ReplacePrefix("01133334444", "0", "+55"); !ok || n != "+551133334444" {
		t.Fatal(n, ok)
	}
	if n, ok := ReplacePrefix("1133334444", "0", "+55"); ok || n != "1133334444" {
		t.Fatal(n, ok)
	}
}
