package partition

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestMurmur2KafkaUtilsTestVectors checks the vectors that Apache Kafka's
// own UtilsTest.testMurmur2 asserts for Utils.murmur2, plus the empty input
// and short keys whose Kafka hashes other Kafka clients publish. Together
// they cover every tail length (0-3 bytes).
func TestMurmur2KafkaUtilsTestVectors(t *testing.T) {
	cases := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"", 275646681},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
	}
	for _, c := range cases {
		if got := Murmur2([]byte(c.in)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestForKeyKnownPartitions checks partitions derived from the vectors by
// hand: toPositive clears the sign bit (it is not an absolute value).
func TestForKeyKnownPartitions(t *testing.T) {
	cases := []struct {
		in   string
		n    int32
		want int32
	}{
		// -790332482 & 0x7fffffff = 1357151166; 1357151166 % 50 = 16
		{"foobar", 50, 16},
		// -973932308 & 0x7fffffff = 1173551340; % 6 = 0, % 7 = 3
		{"21", 6, 0},
		{"21", 7, 3},
		// 479470107 is positive: 479470107 % 12 = 3
		{"abc", 12, 3},
		// -58897971 & 0x7fffffff = 2088585677; % 1000 = 677
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 1000, 677},
		{"anything", 1, 0},
	}
	for _, c := range cases {
		got, err := ForKey([]byte(c.in), c.n)
		if err != nil {
			t.Fatalf("ForKey(%q, %d): %v", c.in, c.n, err)
		}
		if got != c.want {
			t.Errorf("ForKey(%q, %d) = %d, want %d", c.in, c.n, got, c.want)
		}
	}
}

func TestToPositive(t *testing.T) {
	cases := map[int32]int32{
		0:              0,
		1:              1,
		-1:             math.MaxInt32,
		math.MinInt32:  0,
		math.MaxInt32:  math.MaxInt32,
		-973932308:     1173551340,
		-2147483647:    1,
		2147483646:     2147483646,
		-1_000_000_000: 1147483648,
	}
	for in, want := range cases {
		if got := ToPositive(in); got != want {
			t.Errorf("ToPositive(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestJavaClientVectors checks testdata/java_vectors.txt, which
// testdata/GenVectors.java produced by calling kafka-clients 4.1.1's
// Utils.murmur2 and Utils.toPositive: string keys, every length from 1 to
// 17 bytes with high-bit bytes, UTF-8 text and big-endian longs.
func TestJavaClientVectors(t *testing.T) {
	f, err := os.Open("testdata/java_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var counts []int32
	lines := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "#" {
			for _, h := range fields[4:] {
				n, err := strconv.ParseInt(strings.TrimPrefix(h, "p"), 10, 32)
				if err != nil {
					t.Fatalf("bad header %q: %v", h, err)
				}
				counts = append(counts, int32(n))
			}
			continue
		}
		if len(fields) != 3+len(counts) {
			t.Fatalf("line %q: %d fields, want %d", sc.Text(), len(fields), 3+len(counts))
		}
		var key []byte
		if fields[1] != "-" {
			key, err = hex.DecodeString(fields[1])
			if err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
		}
		want, err := strconv.ParseInt(fields[2], 10, 32)
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if got := Murmur2(key); got != int32(want) {
			t.Errorf("%s %x: Murmur2 = %d, Java = %d", fields[0], key, got, want)
		}
		for i, n := range counts {
			wantP, err := strconv.ParseInt(fields[3+i], 10, 32)
			if err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			gotP, err := ForKey(key, n)
			if err != nil {
				t.Fatal(err)
			}
			if gotP != int32(wantP) {
				t.Errorf("%s %x: ForKey(n=%d) = %d, Java = %d", fields[0], key, n, gotP, wantP)
			}
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines < 60 || len(counts) == 0 {
		t.Fatalf("read %d vectors over %d partition counts; the file is truncated", lines, len(counts))
	}
}

func TestForKeyRejectsNonPositiveCounts(t *testing.T) {
	for _, n := range []int32{0, -1, math.MinInt32} {
		if _, err := ForKey([]byte("k"), n); !errors.Is(err, ErrNoPartitions) {
			t.Errorf("ForKey(n=%d) error = %v, want ErrNoPartitions", n, err)
		}
	}
}

func TestSaramaPartitionerKeyed(t *testing.T) {
	p := NewSaramaPartitioner("t")
	if !p.RequiresConsistency() {
		t.Error("RequiresConsistency = false, keyed placement must be respected")
	}
	dp, ok := p.(sarama.DynamicConsistencyPartitioner)
	if !ok {
		t.Fatal("not a DynamicConsistencyPartitioner")
	}
	msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("foobar")}
	if !dp.MessageRequiresConsistency(msg) {
		t.Error("keyed message does not require consistency")
	}
	got, err := p.Partition(msg, 50)
	if err != nil || got != 16 {
		t.Errorf("Partition(foobar, 50) = %d, %v; want 16", got, err)
	}
	// An empty key is a key: Java hashes it (murmur2 = 275646681).
	got, err = p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("")}, 1000)
	if err != nil || got != 681 {
		t.Errorf("Partition(empty, 1000) = %d, %v; want 681", got, err)
	}
}

func TestSaramaPartitionerKeyless(t *testing.T) {
	p := NewSaramaPartitioner("t").(sarama.DynamicConsistencyPartitioner)
	for _, msg := range []*sarama.ProducerMessage{
		{Topic: "t"},
		{Topic: "t", Key: sarama.ByteEncoder(nil)},
	} {
		if msg.Key == nil && p.MessageRequiresConsistency(msg) {
			t.Error("keyless message requires consistency")
		}
		seen := map[int32]bool{}
		for range 200 {
			got, err := p.Partition(msg, 4)
			if err != nil {
				t.Fatal(err)
			}
			if got < 0 || got >= 4 {
				t.Fatalf("keyless partition %d out of [0,4)", got)
			}
			seen[got] = true
		}
		// 200 uniform draws over 4 partitions all landing on one has
		// probability 4 * 4^-200: this is not a flaky check.
		if len(seen) < 2 {
			t.Errorf("keyless messages all went to %v", seen)
		}
	}
}

type failingEncoder struct{}

func (failingEncoder) Encode() ([]byte, error) { return nil, errors.New("boom") }
func (failingEncoder) Length() int             { return 0 }

func TestSaramaPartitionerErrors(t *testing.T) {
	p := NewSaramaPartitioner("t")
	if _, err := p.Partition(&sarama.ProducerMessage{Topic: "t", Key: failingEncoder{}}, 3); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("encode failure: err = %v", err)
	}
	if _, err := p.Partition(&sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("k")}, 0); !errors.Is(err, ErrNoPartitions) {
		t.Errorf("zero partitions: err = %v", err)
	}
}

// TestAgreesWithSaramaMurmur2Partitioner compares brook's partitioner with
// sarama's NewMurmur2Partitioner (sarama's Java-compatible one) on many keys
// and partition counts. sarama's other hash partitioners are not Java
// compatible; the test shows that for NewHashPartitioner (FNV-1a) and
// NewConsistentCRCHashPartitioner (CRC32) so nobody swaps them in.
func TestAgreesWithSaramaMurmur2Partitioner(t *testing.T) {
	ours := NewSaramaPartitioner("t")
	theirs := sarama.NewMurmur2Partitioner("t")
	fnv := sarama.NewHashPartitioner("t")
	crc := sarama.NewConsistentCRCHashPartitioner("t")
	counts := []int32{1, 2, 3, 6, 7, 12, 16, 50, 97, 1000}
	fnvDiffers, crcDiffers := 0, 0
	for i := range 20000 {
		var key []byte
		switch i % 3 {
		case 0:
			key = fmt.Appendf(nil, "customer-%d", i)
		case 1:
			key = []byte{byte(i), byte(i >> 8), byte(i >> 16), 0xff, 0x80}[:i%6]
		default:
			key = []byte(strings.Repeat("x", i%41))
		}
		msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.ByteEncoder(key)}
		n := counts[i%len(counts)]
		a, err := ours.Partition(msg, n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := theirs.Partition(msg, n)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("key %x over %d partitions: brook %d, sarama murmur2 %d", key, n, a, b)
		}
		if n >= 6 {
			if f, _ := fnv.Partition(msg, n); f != a {
				fnvDiffers++
			}
			if c, _ := crc.Partition(msg, n); c != a {
				crcDiffers++
			}
		}
	}
	if fnvDiffers == 0 || crcDiffers == 0 {
		t.Errorf("FNV differs on %d keys, CRC on %d: expected both to disagree with Java placement", fnvDiffers, crcDiffers)
	}
}

func FuzzForKey(f *testing.F) {
	f.Add([]byte("foobar"), int32(50))
	f.Add([]byte{}, int32(1))
	f.Add([]byte{0xff, 0x80, 0x00}, int32(-3))
	f.Add([]byte("a-little-bit-longer-string"), int32(math.MaxInt32))
	f.Fuzz(func(t *testing.T, key []byte, n int32) {
		h := Murmur2(key)
		if ToPositive(h) < 0 {
			t.Fatalf("ToPositive(%d) < 0", h)
		}
		p, err := ForKey(key, n)
		if n <= 0 {
			if !errors.Is(err, ErrNoPartitions) {
				t.Fatalf("n=%d: err = %v", n, err)
			}
			return
		}
		if err != nil || p < 0 || p >= n {
			t.Fatalf("ForKey(%x, %d) = %d, %v", key, n, p, err)
		}
		if h2 := Murmur2(key); h2 != h {
			t.Fatalf("Murmur2 not deterministic: %d then %d", h, h2)
		}
	})
}
