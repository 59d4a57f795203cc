package server

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const scramIterations = 4096

// scramCredential is the server's stored SCRAM-SHA-256 verifier of the
// password (RFC 5802 / RFC 7677), computed once at start-up.
type scramCredential struct {
	salt      []byte
	storedKey []byte
	serverKey []byte
}

func newSCRAMCredential(password string) (*scramCredential, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("server: make scram salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("server: derive scram key: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	return &scramCredential{
		salt:      salt,
		storedKey: stored[:],
		serverKey: hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramExchange is one authentication attempt.
type scramExchange struct {
	cred            *scramCredential
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

var errSCRAMProtocol = errors.New("malformed SCRAM message")

// first handles the client-first-message and returns the server-first-message.
func (x *scramExchange) first(msg string) (string, error) {
	// gs2-header: cbind-flag "," [authzid] ","
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 {
		return "", errSCRAMProtocol
	}
	switch {
	case parts[0] == "n" || parts[0] == "y":
	case strings.HasPrefix(parts[0], "p="):
		return "", errors.New("channel binding is not supported")
	default:
		return "", errSCRAMProtocol
	}
	x.gs2Header = parts[0] + "," + parts[1] + ","
	x.clientFirstBare = parts[2]
	var clientNonce string
	for _, attr := range strings.Split(x.clientFirstBare, ",") {
		if strings.HasPrefix(attr, "r=") {
			clientNonce = attr[2:]
		}
	}
	if clientNonce == "" {
		return "", errSCRAMProtocol
	}
	buf := make([]byte, 18)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	x.nonce = clientNonce + base64.StdEncoding.EncodeToString(buf)
	x.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", x.nonce,
		base64.StdEncoding.EncodeToString(x.cred.salt), scramIterations)
	return x.serverFirst, nil
}

// final verifies the client-final-message; it returns the server-final-message
// on success, and ok=false for a wrong password.
func (x *scramExchange) final(msg string) (reply string, ok bool, err error) {
	idx := strings.LastIndex(msg, ",p=")
	if idx < 0 {
		return "", false, errSCRAMProtocol
	}
	withoutProof := msg[:idx]
	proof, err := base64.StdEncoding.DecodeString(msg[idx+3:])
	if err != nil || len(proof) != sha256.Size {
		return "", false, errSCRAMProtocol
	}
	var binding, nonce string
	for _, attr := range strings.Split(withoutProof, ",") {
		switch {
		case strings.HasPrefix(attr, "c="):
			binding = attr[2:]
		case strings.HasPrefix(attr, "r="):
			nonce = attr[2:]
		}
	}
	if binding != base64.StdEncoding.EncodeToString([]byte(x.gs2Header)) || nonce != x.nonce {
		return "", false, errSCRAMProtocol
	}
	authMessage := []byte(x.clientFirstBare + "," + x.serverFirst + "," + withoutProof)
	clientSignature := hmacSHA256(x.cred.storedKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSignature[i]
	}
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], x.cred.storedKey) != 1 {
		return "", false, nil
	}
	serverSignature := hmacSHA256(x.cred.serverKey, authMessage)
	return "v=" + base64.StdEncoding.EncodeToString(serverSignature), true, nil
}
