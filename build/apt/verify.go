package apt

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"

	"nroot/format/keyring"
)

// Signed is the verified text of a Release and who signed it.
type Signed struct {
	Text        []byte
	Fingerprint string // the signing key's primary fingerprint
	KeyID       string
}

// UnknownKeyError says that no key in the keyring made any of the
// signatures. It names the keys that did, as apt's NO_PUBKEY does.
type UnknownKeyError struct {
	KeyIDs []string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("signed by unknown key %s", strings.Join(e.KeyIDs, ", "))
}

var (
	armorStart = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
)

// VerifyInRelease checks a clearsigned InRelease file and returns the
// signed text. Text outside the signed block is refused, as apt refuses
// it, so nothing unsigned can be smuggled into the parse.
func VerifyInRelease(data []byte, kr *keyring.Keyring, now time.Time) (*Signed, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), armorStart) {
		return nil, errors.New("not a clearsigned message: it does not start with " + string(armorStart))
	}
	block, rest := clearsign.Decode(data)
	if block == nil {
		return nil, errors.New("malformed clearsigned message")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the signature block")
	}
	sigData, err := readAllArmor(block)
	if err != nil {
		return nil, err
	}
	return verifyDetached(block.Bytes, sigData, kr, now, block.Plaintext)
}

// VerifyRelease checks a Release file against its detached Release.gpg.
func VerifyRelease(release, signature []byte, kr *keyring.Keyring, now time.Time) (*Signed, error) {
	sig := signature
	if bytes.Contains(signature[:min(len(signature), 64)], []byte("-----BEGIN PGP")) {
		b, err := decodeArmor(signature)
		if err != nil {
			return nil, fmt.Errorf("Release.gpg: %w", err)
		}
		sig = b
	}
	return verifyDetached(release, sig, kr, now, release)
}

// ErrWeakHash says a signature's digest is weaker than SHA-256.
var ErrWeakHash = errors.New("digest weaker than SHA-256, refused as apt refuses it")

// strongHashes are the signature digests nroot accepts.
var strongHashes = map[crypto.Hash]bool{
	crypto.SHA256: true, crypto.SHA384: true, crypto.SHA512: true,
	crypto.SHA3_256: true, crypto.SHA3_512: true,
}

func verifyDetached(signed, sig []byte, kr *keyring.Keyring, now time.Time, text []byte) (*Signed, error) {
	cfg := &packet.Config{Time: func() time.Time { return now }}
	packetSig, signer, err := openpgp.VerifyDetachedSignature(kr.Entities, bytes.NewReader(signed), bytes.NewReader(sig), cfg)
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return nil, &UnknownKeyError{KeyIDs: issuers(sig)}
	}
	if err != nil {
		return nil, fmt.Errorf("bad signature: %w", err)
	}
	// go-crypto's detached verification does not apply its own list of
	// rejected message hashes; apt refuses SHA-1 and weaker, and so does
	// nroot: a collision could make one signature cover two Releases.
	if !strongHashes[packetSig.Hash] {
		return nil, fmt.Errorf("signature by %016X uses %v: %w", signer.PrimaryKey.KeyId, packetSig.Hash, ErrWeakHash)
	}
	return &Signed{
		Text:        text,
		Fingerprint: strings.ToUpper(fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint)),
		KeyID:       fmt.Sprintf("%016X", signer.PrimaryKey.KeyId),
	}, nil
}

// issuers lists the key IDs named by the signature packets.
func issuers(sig []byte) []string {
	var ids []string
	pr := packet.NewReader(bytes.NewReader(sig))
	for {
		p, err := pr.Next()
		if err != nil {
			break
		}
		if s, ok := p.(*packet.Signature); ok && s.IssuerKeyId != nil {
			ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
		}
	}
	if len(ids) == 0 {
		ids = []string{"(none named)"}
	}
	return ids
}
