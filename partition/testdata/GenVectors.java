// GenVectors prints murmur2 hashes and default-partitioner partitions that
// Apache Kafka's own client code computes, for keys built deterministically
// here. Its output is testdata/java_vectors.txt, which partition_test.go
// checks against the Go implementation.
//
// Regenerate (needs Java 11+ and the kafka-clients and slf4j-api jars from Maven Central):
//
//	java -cp kafka-clients-4.1.1.jar:slf4j-api.jar testdata/GenVectors.java > testdata/java_vectors.txt
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Utils;

public class GenVectors {
    static final int[] COUNTS = {1, 3, 6, 12, 50, 64, 1000};

    static void line(String label, byte[] key) {
        StringBuilder hex = new StringBuilder();
        for (byte b : key) {
            hex.append(String.format("%02x", b & 0xff));
        }
        int h = Utils.murmur2(key);
        StringBuilder sb = new StringBuilder();
        sb.append(label).append(' ').append(hex.length() == 0 ? "-" : hex.toString()).append(' ').append(h);
        for (int n : COUNTS) {
            sb.append(' ').append(Utils.toPositive(h) % n);
        }
        System.out.println(sb);
    }

    public static void main(String[] args) {
        System.out.print("# label hex-key murmur2");
        for (int n : COUNTS) {
            System.out.print(" p" + n);
        }
        System.out.println();
        line("empty", new byte[0]);
        for (int i = 0; i < 40; i++) {
            line("str", ("key-" + i).getBytes(StandardCharsets.UTF_8));
        }
        // every length from 1 to 17 bytes, with bytes >= 0x80 to exercise
        // Java's signed bytes and the masking in the tail
        for (int len = 1; len <= 17; len++) {
            byte[] b = new byte[len];
            for (int i = 0; i < len; i++) {
                b[i] = (byte) (0xff - i * 13);
            }
            line("len" + len, b);
        }
        line("utf8", "kundennummer-ä-€-𝄞".getBytes(StandardCharsets.UTF_8));
        // big-endian longs, as Kafka's LongSerializer writes them
        long[] longs = {0L, 1L, -1L, 42L, Long.MAX_VALUE, Long.MIN_VALUE, 1234567890123L};
        for (long v : longs) {
            byte[] b = new byte[8];
            for (int i = 0; i < 8; i++) {
                b[i] = (byte) (v >>> (56 - 8 * i));
            }
            line("long", b);
        }
    }
}
