package transport

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// printCollidingKeys are two printable keys of one crdt.HashKey that also
// shared an unkeyed print (FNV-1a folded to 32 bits). They took no 2^48
// search: a 16-byte step of HashKey may be swapped for another at no cost
// (see crdt/hash.go), so 18 such steps give 2^18 keys of one HashKey, and
// among them two share any fixed 32-bit print by the birthday bound (found
// in under a second).
var printCollidingKeys = [2]string{
	"3?r})g8Lcfg(e=!:]()/TQsUe;A\\dWOmDgP/-Z9ATv^5l.3<?\\KsQO\"|t>,oH@(Fi)Ji/[dYtzk>r^F\"Varw%B4Z037_8N5X#-C'Xh5tHPRi@AjVj*XWpP!23%H.cP.=lk4a=J#_2hU|Epyu)lnY(\"#24-5c5N<^N~j`frBc9bO+6..E{jW]`KjLb3dxe_C|3QrNX%uE$aGm0z<J{76i2z4*p?xl7`RsI~>4[c{d3u\\F8K>u$)4q{xUNycXY]6nDlOV3/,Tb4&y*eMBXGdmZ7&hJ)rvOlOah@'A`oybkA'3(?cAGI5#?Xb^T@i4M,ro!;Zf#-B:|}iLR#9i!<U.zuD$v_DgxH#)K-yDO+:\\}FNzs~!3hOTd@DFq!MZq24kA+jyBvH1?6s'D!:>)+\"x((rx`yl*^Df>axBzj9pnG9gjy:a\\7.%h!:,c]idinT*)gu=yex'D~6#1G!M@x{0Oc_!TdGPwFB3C,)ep,fLb{VD['y6hLY/7&`5|W_2-%5)`A\"O$)uF;TFX9+C//;,Iw3.&NR7\"]1?8&J*HT/06|Mj$Qbssc\"IXN*0=Sd$MI8&<El5",
	"3?r})g8Lcfg(e=!:mp,>^thMUcDMnrTuDgP/-Z9ATv^5l.3<?\\KsQO\"|t>,oH@(Fi)Ji/[dYtzk>r^F\"S!x{D#Co5s=SY/Bm#-C'Xh5tHPRi@AjV4P-@%\"L[m_=96\"CTlk4a=J#_2hU|Epyu(,3^O]O05mhdR1P\\N~j`frBc9bO+6..E{jW]`KjLb3dxe_C|3QrNX%uE$aGm0z<J`m0(c>(~ke~-f$N'I~>4[c{d3u\\F8K>u,.Fs~,S8qd*[Xbh2lOV3/,Tb4&y*eMBXGdmZ7&hJ)rvOlOah@'A`oybkA'3(?cAGI5#?Xb^T@i4M,ro!;Zf#-B:|}iLR#9i!<U.zuD$v_DgxH#)K-yDO+:\\}FNzs~!3hOTd@DFq!MZq24kA+jyBvH1?6s'D!:>)+\"x((rx`yl*^Df>axBzj9pnG9gjy:a\\7.){-#qlCthzbMw&yh=yex'D~6#1G!M@x{:Cqq[,(KZ{TlI;`%ep,fLb{VD['y6hLY3ENgRTLJ._M2NHZ7O$)uF;TFX9+C//;,Iw3.&NR7\"]1?8&J*HT/06|Mj$Qbssc\"IXN*0=Sd$MI8&<El5",
}

// TestChosenKeysOfOnePrintReachTheInitiator: as
// TestCollidedKeyReachesTheInitiatorBeforeItCompletes, with two keys a
// caller chose to share both the key hash and an unkeyed print: the
// responder took them for one key, wanted the initiator's newer record,
// sent its own back only in a Reject that nothing awaits, and that Reject
// lost, the initiator completed lacking its key. A print keyed by the
// session's id tells them apart at every session but by a chance of one
// in 2^32.
func TestChosenKeysOfOnePrintReachTheInitiator(t *testing.T) {
	ka, kb := printCollidingKeys[0], printCollidingKeys[1]
	if crdt.HashKey(ka) != crdt.HashKey(kb) {
		t.Fatalf("the keys no longer share a hash: choose two that do")
	}
	lose := func(h hop, m wire.Message) bool { return h.from == "b" && h.e.Kind == wire.KindReject }
	completed, holds := collidedSession(t, ka, kb, true, lose)
	if !completed {
		t.Fatalf("the session did not complete")
	}
	if !holds {
		t.Fatalf("a completed its session lacking b's key of the same hash and print")
	}
}
