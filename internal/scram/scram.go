// Package scram is the client side of SASL SCRAM (RFC 5802) with SHA-256
// and SHA-512 (RFC 7677), as Kafka brokers speak it, for sarama's
// SCRAMClientGeneratorFunc.
//
// A Client runs one exchange: client-first message, server-first message
// (nonce, salt, iteration count), client-final message with the proof, and
// the server-final message, whose signature it verifies, so a broker that
// does not know the password cannot pretend to have authenticated the
// client. Channel binding is not used (GS2 header "n,,"): Kafka does not
// support it; TLS protects the exchange instead.
//
// The password is used as its UTF-8 bytes, without SASLprep, as Kafka's
// own clients and brokers do; user names are escaped as RFC 5802 requires
// ("," and "=").
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// MinIterations is the smallest PBKDF2 iteration count a server may ask
// for. Kafka refuses to store credentials with fewer; a server that asks
// for fewer is not a Kafka broker or tries to make the proof cheap to
// attack, and the exchange fails.
const MinIterations = 4096

// maxIterations bounds the work a server can make the client do.
const maxIterations = 1 << 20

// Mechanism is a SCRAM variant: its SASL name and hash.
type Mechanism struct {
	name string
	hash func() hash.Hash
}

// The mechanisms Kafka supports.
var (
	SHA256 = Mechanism{name: "SCRAM-SHA-256", hash: sha256.New}
	SHA512 = Mechanism{name: "SCRAM-SHA-512", hash: sha512.New}
)

// Name returns the SASL mechanism name, e.g. "SCRAM-SHA-256".
func (m Mechanism) Name() string { return m.name }

// Error is a failed SCRAM exchange; Step says which message failed.
type Error struct {
	Mechanism string
	Step      string
	Err       error
}

func (e *Error) Error() string {
	return fmt.Sprintf("scram: %s %s: %v", e.Mechanism, e.Step, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrServerSignature reports a server-final message whose signature does
// not match: the server does not know the password (or the exchange was
// tampered with).
var ErrServerSignature = errors.New("server signature does not match: the server could not prove it knows the credentials")

type step int

const (
	stepBegin step = iota
	stepFirst
	stepFinal
	stepVerify
	stepDone
)

// Client is one SCRAM exchange. It implements sarama.SCRAMClient: Begin,
// then Step until Done. A Client is not safe for concurrent use and runs
// one exchange.
type Client struct {
	mech     Mechanism
	newNonce func() (string, error)

	user, password, authzID string
	step                    step
	clientNonce             string
	clientFirstBare         string
	serverSignature         []byte
}

// NewClient returns a client for one exchange with mechanism m.
func NewClient(m Mechanism) *Client {
	return &Client{mech: m, newNonce: randomNonce}
}

// Begin starts the exchange for user and password; authzID, when not
// empty, asks to act as that identity.
func (c *Client) Begin(user, password, authzID string) error {
	if c.step != stepBegin {
		return c.fail("begin", errors.New("the exchange has already started"))
	}
	if user == "" {
		return c.fail("begin", errors.New("empty user name"))
	}
	c.user, c.password, c.authzID = user, password, authzID
	c.step = stepFirst
	return nil
}

// Step takes the server's last message (empty for the first step) and
// returns the next message to send.
func (c *Client) Step(challenge string) (string, error) {
	switch c.step {
	case stepFirst:
		return c.clientFirst()
	case stepFinal:
		return c.clientFinal(challenge)
	case stepVerify:
		return "", c.verify(challenge)
	case stepBegin:
		return "", c.fail("step", errors.New("Begin was not called"))
	default:
		return "", c.fail("step", errors.New("the exchange is over"))
	}
}

// Done reports whether the exchange has ended successfully.
func (c *Client) Done() bool { return c.step == stepDone }

func (c *Client) fail(step string, err error) error {
	c.step = stepDone + 1 // no further steps
	return &Error{Mechanism: c.mech.name, Step: step, Err: err}
}

func (c *Client) gs2Header() string {
	if c.authzID == "" {
		return "n,,"
	}
	return "n,a=" + escapeName(c.authzID) + ","
}

func (c *Client) clientFirst() (string, error) {
	nonce, err := c.newNonce()
	if err != nil {
		return "", c.fail("client-first message", err)
	}
	c.clientNonce = nonce
	c.clientFirstBare = "n=" + escapeName(c.user) + ",r=" + nonce
	c.step = stepFinal
	return c.gs2Header() + c.clientFirstBare, nil
}

func (c *Client) clientFinal(serverFirst string) (string, error) {
	const what = "server-first message"
	attrs, err := parseAttrs(serverFirst)
	if err != nil {
		return "", c.fail(what, err)
	}
	if _, ok := attrs["m"]; ok {
		return "", c.fail(what, errors.New("the server requires an extension this client does not support"))
	}
	if msg, ok := attrs["e"]; ok {
		return "", c.fail(what, fmt.Errorf("the server refused: %s", msg))
	}
	nonce, saltB64, iterStr := attrs["r"], attrs["s"], attrs["i"]
	if nonce == "" || saltB64 == "" || iterStr == "" {
		return "", c.fail(what, fmt.Errorf("missing nonce, salt or iteration count in %q", serverFirst))
	}
	if !strings.HasPrefix(nonce, c.clientNonce) || len(nonce) == len(c.clientNonce) {
		return "", c.fail(what, errors.New("the server nonce does not extend the client nonce"))
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || len(salt) == 0 {
		return "", c.fail(what, fmt.Errorf("bad salt %q", saltB64))
	}
	iters, err := strconv.Atoi(iterStr)
	if err != nil || iters < MinIterations || iters > maxIterations {
		return "", c.fail(what, fmt.Errorf("iteration count %q is not between %d and %d", iterStr, MinIterations, maxIterations))
	}
	size := c.mech.hash().Size()
	salted, err := pbkdf2.Key(c.mech.hash, c.password, salt, iters, size)
	if err != nil {
		return "", c.fail(what, err)
	}
	clientKey := c.hmac(salted, "Client Key")
	h := c.mech.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2Header())) + ",r=" + nonce
	authMessage := c.clientFirstBare + "," + serverFirst + "," + withoutProof
	proof := c.hmac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSignature = c.hmac(c.hmac(salted, "Server Key"), authMessage)
	c.step = stepVerify
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (c *Client) verify(serverFinal string) error {
	const what = "server-final message"
	attrs, err := parseAttrs(serverFinal)
	if err != nil {
		return c.fail(what, err)
	}
	if msg, ok := attrs["e"]; ok {
		return c.fail(what, fmt.Errorf("the server refused: %s", msg))
	}
	sig, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || len(sig) == 0 {
		return c.fail(what, fmt.Errorf("no server signature in %q", serverFinal))
	}
	if subtle.ConstantTimeCompare(sig, c.serverSignature) != 1 {
		return c.fail(what, ErrServerSignature)
	}
	c.step = stepDone
	return nil
}

func (c *Client) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.mech.hash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// parseAttrs splits "a=x,b=y" into its attributes; values may contain '='.
func parseAttrs(msg string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(msg, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil, fmt.Errorf("malformed attribute %q in %q", part, msg)
		}
		if _, dup := out[part[:1]]; dup {
			return nil, fmt.Errorf("attribute %q repeated in %q", part[:1], msg)
		}
		out[part[:1]] = part[2:]
	}
	return out, nil
}

// escapeName escapes a SCRAM user name: "=" as "=3D" and "," as "=2C".
func escapeName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// randomNonce returns 24 random bytes in base64 (printable, without ',').
func randomNonce() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random nonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}
