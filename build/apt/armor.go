package apt

import (
	"bytes"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

func readAllArmor(b *clearsign.Block) ([]byte, error) {
	if b.ArmoredSignature == nil {
		return nil, fmt.Errorf("clearsigned message without a signature block")
	}
	sig, err := io.ReadAll(io.LimitReader(b.ArmoredSignature.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("signature block: %w", err)
	}
	return sig, nil
}

func decodeArmor(data []byte) ([]byte, error) {
	blk, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(blk.Body, 1<<20))
}
