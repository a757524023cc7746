package apt

import (
	"bytes"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"nroot/format/keyring"
)

// testSigner is an archive key made for a test, with the keyring that
// trusts it.
type testSigner struct {
	entity *openpgp.Entity
	ring   *keyring.Keyring
}

func newTestSigner(t testing.TB, name string) *testSigner {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return time.Now().Add(-time.Hour) }}
	e, err := openpgp.NewEntity(name, "test archive", name+"@example.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Read(&pub, name)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{entity: e, ring: k}
}

// clearsign signs text as an InRelease file.
func (s *testSigner) clearsign(t testing.TB, text []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, s.entity.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(text)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// detach signs text as a Release.gpg file.
func (s *testSigner) detach(t testing.TB, text []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&out, s.entity, bytes.NewReader(text), nil); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
