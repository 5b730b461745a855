package render

import "strconv"

// Numbers appended in decimal, two digits per step: the views write
// several per line.

// pairs holds the two digits of 00 to 99.
const pairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" +
	"60616263646566676869" + "70717273747576777879" + "80818283848586878889" + "90919293949596979899"

// appendDec appends v in decimal, as strconv.AppendUint(b, v, 10) does.
func appendDec(b []byte, v uint64) []byte {
	if v >= 1e8 {
		if v >= 1e16 {
			return strconv.AppendUint(b, v, 10)
		}
		hi := v / 1e8
		lo := uint32(v - hi*1e8)
		return append8(appendDec8(b, uint32(hi)), lo)
	}
	return appendDec8(b, uint32(v))
}

// appendDec8 appends x < 1e8 in decimal.
func appendDec8(b []byte, x uint32) []byte {
	if x < 1e4 {
		switch {
		case x < 10:
			return append(b, byte('0'+x))
		case x < 100:
			return append(b, pairs[2*x], pairs[2*x+1])
		}
		hi, lo := x/100, 2*(x%100)
		if hi < 10 {
			return append(b, byte('0'+hi), pairs[lo], pairs[lo+1])
		}
		return append(b, pairs[2*hi], pairs[2*hi+1], pairs[lo], pairs[lo+1])
	}
	hi, lo := x/1e4, x%1e4
	l1, l2 := 2*(lo/100), 2*(lo%100)
	switch {
	case hi < 10:
		return append(b, byte('0'+hi), pairs[l1], pairs[l1+1], pairs[l2], pairs[l2+1])
	case hi < 100:
		return append(b, pairs[2*hi], pairs[2*hi+1], pairs[l1], pairs[l1+1], pairs[l2], pairs[l2+1])
	}
	h1, h2 := hi/100, 2*(hi%100)
	if h1 < 10 {
		return append(b, byte('0'+h1), pairs[h2], pairs[h2+1], pairs[l1], pairs[l1+1], pairs[l2], pairs[l2+1])
	}
	return append(b, pairs[2*h1], pairs[2*h1+1], pairs[h2], pairs[h2+1], pairs[l1], pairs[l1+1], pairs[l2], pairs[l2+1])
}

// append8 appends x < 1e8 as eight digits.
func append8(b []byte, x uint32) []byte {
	hi, lo := x/1e4, x%1e4
	h1, h2, l1, l2 := 2*(hi/100), 2*(hi%100), 2*(lo/100), 2*(lo%100)
	return append(b, pairs[h1], pairs[h1+1], pairs[h2], pairs[h2+1], pairs[l1], pairs[l1+1], pairs[l2], pairs[l2+1])
}
