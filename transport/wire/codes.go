package wire

// The msgpack type codes the codec reads and writes (see the msgpack spec).
const (
	codePosFixMax = 0x7f
	codeFixMapMin = 0x80
	codeFixMapMax = 0x8f
	codeFixArrMin = 0x90
	codeFixArrMax = 0x9f
	codeFixStrMin = 0xa0
	codeFixStrMax = 0xbf
	codeNil       = 0xc0
	codeFalse     = 0xc2
	codeTrue      = 0xc3
	codeBin8      = 0xc4
	codeBin16     = 0xc5
	codeBin32     = 0xc6
	codeExt8      = 0xc7
	codeExt32     = 0xc9
	codeFloat32   = 0xca
	codeFloat64   = 0xcb
	codeUint8     = 0xcc
	codeUint16    = 0xcd
	codeUint32    = 0xce
	codeUint64    = 0xcf
	codeInt8      = 0xd0
	codeInt16     = 0xd1
	codeInt32     = 0xd2
	codeInt64     = 0xd3
	codeFixExtMin = 0xd4
	codeFixExtMax = 0xd8
	codeStr8      = 0xd9
	codeStr16     = 0xda
	codeStr32     = 0xdb
	codeArray16   = 0xdc
	codeArray32   = 0xdd
	codeMap16     = 0xde
	codeMap32     = 0xdf
	codeNegFixMin = 0xe0
	fixArrLenMask = 0x0f
	fixStrLenMask = 0x1f
)
