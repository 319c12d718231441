// Sign and verify kustom-app webhooks in Go (>= 1.18), with the standard library only.
//
//	header := Sign(secret, rawBody, time.Now().Unix())              // X-Commerce-Signature
//	reason := Verify(secret, rawBody, header, time.Now(), Tolerance) // X-Kustom-App-Signature; "" = valid
//
// rawBody is the exact bytes on the wire: io.ReadAll(r.Body) before any json.Unmarshal on
// the receiving side, the []byte you send on the sending side; never a json.Marshal of a
// decoded value. Timestamps are unix SECONDS (time.Now().Unix()). Format: docs/signing.md.
//
// `go run examples/signing/sign.go schemas/signing-vectors.json` checks these functions
// against the known-answer vectors (prints the results as JSON). Copy Sign and Verify into
// your own package.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far the signature's t may be from the verifier's clock.
const Tolerance = 300 * time.Second

func mac(secret string, timestamp int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(timestamp, 10) + "."))
	h.Write(body)
	return []byte(hex.EncodeToString(h.Sum(nil)))
}

// Sign returns the signature header value for body at the unix time timestamp (seconds).
func Sign(secret string, body []byte, timestamp int64) string {
	return fmt.Sprintf("t=%d,v1=%s", timestamp, mac(secret, timestamp, body))
}

func asciiDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Verify returns "" when header signs body within tolerance of now, else why not:
// "missing", "malformed", "tolerance" or "mismatch".
func Verify(secret string, body []byte, header string, now time.Time, tolerance time.Duration) string {
	if header == "" {
		return "missing"
	}
	var timestamp int64
	haveTimestamp := false
	var macs [][]byte
	for _, entry := range strings.Split(header, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(entry), "=")
		if key == "t" && asciiDigits(value) {
			t, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				continue
			}
			timestamp, haveTimestamp = t, true
		} else if key == "v1" && value != "" {
			macs = append(macs, []byte(value))
		}
	}
	if !haveTimestamp || len(macs) == 0 {
		return "malformed"
	}
	skew := float64(now.UnixNano())/1e9 - float64(timestamp)
	if math.Abs(skew) > tolerance.Seconds() {
		return "tolerance"
	}
	expected := mac(secret, timestamp, body)
	// Several v1 entries: the sender is rotating secrets; one match is enough.
	for _, candidate := range macs {
		if hmac.Equal(expected, candidate) {
			return ""
		}
	}
	return "mismatch"
}

type vector struct {
	Name       string `json:"name"`
	Secret     string `json:"secret"`
	BodyBase64 string `json:"bodyBase64"`
	Timestamp  int64  `json:"timestamp"`
	Header     string `json:"header"`
	Now        int64  `json:"now"`
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var vectors struct {
		Sign   []vector `json:"sign"`
		Verify []vector `json:"verify"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		panic(err)
	}
	body := func(v vector) []byte {
		b, err := base64.StdEncoding.DecodeString(v.BodyBase64)
		if err != nil {
			panic(err)
		}
		return b
	}
	result := map[string]map[string]*string{"sign": {}, "verify": {}}
	for _, v := range vectors.Sign {
		header := Sign(v.Secret, body(v), v.Timestamp)
		result["sign"][v.Name] = &header
	}
	for _, v := range vectors.Verify {
		reason := Verify(v.Secret, body(v), v.Header, time.Unix(v.Now, 0), Tolerance)
		if reason == "" {
			result["verify"][v.Name] = nil
		} else {
			result["verify"][v.Name] = &reason
		}
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}
