package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

var _ sarama.SCRAMClient = (*Client)(nil)

func fixedNonce(n string) func() (string, error) {
	return func() (string, error) { return n, nil }
}

// TestRFC7677Vector runs the SCRAM-SHA-256 example exchange of RFC 7677
// section 3 and checks every client message and the server verification.
func TestRFC7677Vector(t *testing.T) {
	c := NewClient(SHA256)
	c.newNonce = fixedNonce("rOprNGfwEbeRWgbNEkqO")
	if err := c.Begin("user", "pencil", ""); err != nil {
		t.Fatal(err)
	}
	first, err := c.Step("")
	if err != nil {
		t.Fatal(err)
	}
	if want := "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"; first != want {
		t.Fatalf("client-first = %q, want %q", first, want)
	}
	final, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	if err != nil {
		t.Fatal(err)
	}
	if want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="; final != want {
		t.Fatalf("client-final = %q, want %q", final, want)
	}
	if c.Done() {
		t.Fatal("Done before the server-final message")
	}
	if _, err := c.Step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="); err != nil {
		t.Fatal(err)
	}
	if !c.Done() {
		t.Fatal("not Done after a verified server-final message")
	}
}

// server is the broker side of one exchange, written from RFC 5802 for the
// tests: it checks the client's proof against the stored credentials.
type server struct {
	t                    *testing.T
	mech                 Mechanism
	salt                 []byte
	iters                int
	storedKey, serverKey []byte
	clientFirstBare      string
	serverFirst          string
	user                 string
}

func newServer(t *testing.T, m Mechanism, password string, iters int) *server {
	s := &server{t: t, mech: m, salt: []byte("some salt bytes!"), iters: iters}
	salted, err := pbkdf2.Key(m.hash, password, s.salt, iters, m.hash().Size())
	if err != nil {
		t.Fatal(err)
	}
	ck := mac(m, salted, "Client Key")
	h := m.hash()
	h.Write(ck)
	s.storedKey = h.Sum(nil)
	s.serverKey = mac(m, salted, "Server Key")
	return s
}

func mac(m Mechanism, key []byte, msg string) []byte {
	h := hmac.New(m.hash, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func (s *server) first(clientFirst string) string {
	_, bare, ok := strings.Cut(strings.TrimPrefix(clientFirst, "n,"), ",")
	if !ok || !strings.HasPrefix(clientFirst, "n,") {
		s.t.Fatalf("client-first %q has no GS2 header", clientFirst)
	}
	s.clientFirstBare = bare
	attrs, err := parseAttrs(bare)
	if err != nil {
		s.t.Fatal(err)
	}
	s.user = attrs["n"]
	s.serverFirst = "r=" + attrs["r"] + "srvpart,s=" + base64.StdEncoding.EncodeToString(s.salt) + ",i=" + strconv.Itoa(s.iters)
	return s.serverFirst
}

// final checks the proof; ok false means authentication failed.
func (s *server) final(clientFinal string) (string, bool) {
	withoutProof, proofB64, _ := strings.Cut(clientFinal, ",p=")
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	sig := mac(s.mech, s.storedKey, auth)
	ck := make([]byte, len(proof))
	for i := range proof {
		ck[i] = proof[i] ^ sig[i]
	}
	h := s.mech.hash()
	h.Write(ck)
	if subtle.ConstantTimeCompare(h.Sum(nil), s.storedKey) != 1 {
		return "", false
	}
	return "v=" + base64.StdEncoding.EncodeToString(mac(s.mech, s.serverKey, auth)), true
}

func exchange(t *testing.T, m Mechanism, user, clientPassword, serverPassword string) (*Client, *server, error) {
	t.Helper()
	srv := newServer(t, m, serverPassword, 4096)
	c := NewClient(m)
	if err := c.Begin(user, clientPassword, ""); err != nil {
		return c, srv, err
	}
	first, err := c.Step("")
	if err != nil {
		return c, srv, err
	}
	final, err := c.Step(srv.first(first))
	if err != nil {
		return c, srv, err
	}
	reply, ok := srv.final(final)
	if !ok {
		return c, srv, errors.New("server: authentication failed")
	}
	_, err = c.Step(reply)
	return c, srv, err
}

func TestExchangeBothMechanisms(t *testing.T) {
	for _, m := range []Mechanism{SHA256, SHA512} {
		t.Run(m.Name(), func(t *testing.T) {
			c, srv, err := exchange(t, m, "alice,=x", "s3cret pässword", "s3cret pässword")
			if err != nil {
				t.Fatal(err)
			}
			if !c.Done() {
				t.Fatal("not Done")
			}
			if srv.user != "alice=2C=3Dx" {
				t.Fatalf("user sent as %q, want it escaped as alice=2C=3Dx", srv.user)
			}
			if _, _, err := exchange(t, m, "alice", "wrong", "s3cret"); err == nil {
				t.Fatal("a wrong password authenticated")
			}
		})
	}
}

// TestMechanismsDiffer: a SHA-256 proof does not pass a SHA-512 server.
func TestMechanismsDiffer(t *testing.T) {
	srv := newServer(t, SHA512, "pw", 4096)
	c := NewClient(SHA256)
	if err := c.Begin("u", "pw", ""); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Step("")
	final, err := c.Step(srv.first(first))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.final(final); ok {
		t.Fatal("a SCRAM-SHA-256 proof passed a SCRAM-SHA-512 server")
	}
}

func TestRejectsBadServerMessages(t *testing.T) {
	cases := []struct {
		name        string
		serverFirst string
		serverFinal string
		want        string
	}{
		{"foreign nonce", "r=other,s=c2FsdA==,i=4096", "", "nonce"},
		{"nonce not extended", "r=NONCE,s=c2FsdA==,i=4096", "", "nonce"},
		{"few iterations", "r=NONCEx,s=c2FsdA==,i=1000", "", "iteration count"},
		{"huge iterations", "r=NONCEx,s=c2FsdA==,i=999999999", "", "iteration count"},
		{"bad salt", "r=NONCEx,s=***,i=4096", "", "salt"},
		{"mandatory extension", "m=ext,r=NONCEx,s=c2FsdA==,i=4096", "", "extension"},
		{"server error", "e=unknown-user", "", "unknown-user"},
		{"malformed", "garbage", "", "malformed"},
		{"wrong signature", "r=NONCEx,s=c2FsdA==,i=4096", "v=AAAA", "signature"},
		{"server-final error", "r=NONCEx,s=c2FsdA==,i=4096", "e=invalid-proof", "invalid-proof"},
		{"no signature", "r=NONCEx,s=c2FsdA==,i=4096", "x=1", "signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(SHA256)
			c.newNonce = fixedNonce("NONCE")
			if err := c.Begin("u", "p", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Step(""); err != nil {
				t.Fatal(err)
			}
			_, err := c.Step(tc.serverFirst)
			if tc.serverFinal != "" {
				if err != nil {
					t.Fatalf("server-first: %v", err)
				}
				_, err = c.Step(tc.serverFinal)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *scram.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
			if c.Done() {
				t.Fatal("Done after a failed exchange")
			}
			if _, err := c.Step("v=AAAA"); err == nil {
				t.Fatal("a failed exchange accepted another step")
			}
		})
	}
}

func TestAuthzIDAndMisuse(t *testing.T) {
	c := NewClient(SHA512)
	c.newNonce = fixedNonce("N")
	if _, err := c.Step(""); err == nil {
		t.Fatal("Step before Begin succeeded")
	}
	c = NewClient(SHA512)
	c.newNonce = fixedNonce("N")
	if err := c.Begin("", "p", ""); err == nil {
		t.Fatal("empty user accepted")
	}
	c = NewClient(SHA512)
	c.newNonce = fixedNonce("N")
	if err := c.Begin("u", "p", "admin,x"); err != nil {
		t.Fatal(err)
	}
	first, err := c.Step("")
	if err != nil {
		t.Fatal(err)
	}
	if want := "n,a=admin=2Cx,n=u,r=N"; first != want {
		t.Fatalf("client-first = %q, want %q", first, want)
	}
	final, err := c.Step("r=Nsrv,s=c2FsdA==,i=4096")
	if err != nil {
		t.Fatal(err)
	}
	// The channel-binding attribute carries the GS2 header in base64.
	if want := "c=" + base64.StdEncoding.EncodeToString([]byte("n,a=admin=2Cx,")) + ",r=Nsrv,p="; !strings.HasPrefix(final, want) {
		t.Fatalf("client-final = %q, want prefix %q", final, want)
	}
	if err := c.Begin("u", "p", ""); err == nil {
		t.Fatal("Begin twice succeeded")
	}
}

func TestRandomNonce(t *testing.T) {
	a, err := randomNonce()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomNonce()
	if a == b || len(a) < 24 || strings.ContainsAny(a, ",=") {
		t.Fatalf("nonces %q, %q: want distinct, long, without ',' or '='", a, b)
	}
}
