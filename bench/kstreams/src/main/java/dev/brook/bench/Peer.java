package dev.brook.bench;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams peer of brook's benchmark harness. One process runs one
 * workload until SIGTERM; the harness measures it from the outside (output
 * topic offsets, record timestamps, the process's peak RSS). Arguments are
 * key=value pairs: workload (B1..B5, B7, B8), brokers, app, in, out, table
 * (B3's table, B8's captures), state, guarantee (alos|eos), and the
 * producer settings acks, linger, batch. The failover workload F1 (B2's
 * count) also takes instance (the client id is app-instance, how the
 * harness tells the group's members apart), standbys
 * (num.standby.replicas) and session (session.timeout.ms; the heartbeat is
 * a third of it), and prints a "restored" event whenever the records its
 * restores applied change.
 */
public final class Peer {
    private Peer() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String s : argv) {
            int i = s.indexOf('=');
            if (i > 0) {
                a.put(s.substring(0, i), s.substring(i + 1));
            }
        }
        String workload = a.get("workload");
        StreamsBuilder b = new StreamsBuilder();
        Consumed<String, byte[]> in = Consumed.with(Serdes.String(), Serdes.ByteArray());
        Produced<String, Long> longOut = Produced.with(Serdes.String(), Serdes.Long());
        switch (workload) {
            case "B1": {
                KStream<String, byte[]> s = b.stream(a.get("in"), in);
                s.mapValues(Peer::transform).to(a.get("out"), Produced.with(Serdes.String(), Serdes.ByteArray()));
                break;
            }
            case "B2":
            case "B5":
            case "B7":
            case "F1": {
                KStream<String, byte[]> s = b.stream(a.get("in"), in);
                s.groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                                .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                        .toStream().to(a.get("out"), longOut);
                break;
            }
            case "B3": {
                KTable<String, byte[]> t = b.table(a.get("table"), Consumed.with(Serdes.String(), Serdes.ByteArray()),
                        Materialized.<String, byte[], KeyValueStore<Bytes, byte[]>>as("profiles")
                                .withKeySerde(Serdes.String()).withValueSerde(Serdes.ByteArray()));
                KStream<String, byte[]> s = b.stream(a.get("in"), in);
                s.join(t, Peer::enrich).to(a.get("out"), Produced.with(Serdes.String(), Serdes.ByteArray()));
                break;
            }
            case "B4": {
                KStream<String, byte[]> s = b.stream(a.get("in"), in);
                s.groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                        .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofMinutes(10)))
                        .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("window-counts")
                                .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                        .toStream((wk, v) -> wk.key() + "@" + wk.window().start())
                        .to(a.get("out"), longOut);
                break;
            }
            case "B8": {
                // Authorisations joined with their captures: a capture from 0 to
                // 5 minutes after its authorisation matches it, grace 20 minutes
                // (bench/harness/authcap.go has the same constants).
                KStream<String, byte[]> auths = b.stream(a.get("in"), in);
                KStream<String, byte[]> captures = b.stream(a.get("table"), in);
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMinutes(5), Duration.ofMinutes(20))
                        .before(Duration.ZERO);
                auths.join(captures, Peer::enrich, w,
                                StreamJoined.with(Serdes.String(), Serdes.ByteArray(), Serdes.ByteArray())
                                        .withStoreName("auth-capture"))
                        .to(a.get("out"), Produced.with(Serdes.String(), Serdes.ByteArray()));
                break;
            }
            default:
                System.err.println("unknown workload " + workload);
                System.exit(2);
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("brokers"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(a.getOrDefault("commit", "1000")));
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0); // one output per input, as brook and goka
        p.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE); // the table topic is its own changelog, as in brook
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                "eos".equals(a.get("guarantee")) ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Leave the group on close, as brook and goka do, so that the next
        // run (B5 warm) does not wait a session timeout for the old member.
        p.put(StreamsConfig.consumerPrefix("internal.leave.group.on.close"), true);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), a.getOrDefault("acks", "all"));
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), Integer.parseInt(a.getOrDefault("linger", "5")));
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), Integer.parseInt(a.getOrDefault("batch", "65536")));
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "none");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);
        boolean failover = "F1".equals(workload);
        if (failover) {
            // Static membership stays off (no group.instance.id), as in brook.
            p.put(StreamsConfig.CLIENT_ID_CONFIG, a.get("app") + "-" + a.get("instance"));
            p.put(StreamsConfig.NUM_STANDBY_REPLICAS_CONFIG, Integer.parseInt(a.getOrDefault("standbys", "0")));
            int session = Integer.parseInt(a.get("session"));
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), session);
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), session / 3);
        }

        KafkaStreams streams = new KafkaStreams(b.build(p), p);
        AtomicLong restoreStart = new AtomicLong(0);
        AtomicLong restoreEnd = new AtomicLong(0);
        AtomicLong restored = new AtomicLong(0);
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                restoreStart.compareAndSet(0, System.nanoTime());
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long endOffset, long n) {
                restored.addAndGet(n);
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                restoreEnd.set(System.nanoTime());
            }
        });
        long t0 = System.nanoTime();
        streams.setStateListener((to, from) -> {
            if (to == KafkaStreams.State.RUNNING) {
                long s = restoreStart.get();
                long e = restoreEnd.get();
                double ms = s == 0 ? 0 : (e - s) / 1e6;
                System.out.printf("{\"event\":\"running\",\"restore_ms\":%.3f,\"restored\":%d,\"since_start_ms\":%.3f}%n",
                        ms, restored.get(), (System.nanoTime() - t0) / 1e6);
                System.out.flush();
            }
        });
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            stop.countDown();
        }));
        streams.start();
        if (failover) {
            Thread t = new Thread(() -> {
                long last = -1;
                while (stop.getCount() > 0) {
                    long n = restored.get();
                    if (n != last) {
                        last = n;
                        System.out.printf("{\"event\":\"restored\",\"restored\":%d}%n", n);
                        System.out.flush();
                    }
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "restored-reporter");
            t.setDaemon(true);
            t.start();
        }
        stop.await();
    }

    /** The map of B1: the value with its first byte changed, in a new array. */
    static byte[] transform(byte[] v) {
        byte[] out = v.clone();
        if (out.length > 0) {
            out[0] ^= 1;
        }
        return out;
    }

    /** The join of B3: the event's bytes followed by the profile's. */
    static byte[] enrich(byte[] event, byte[] profile) {
        return ByteBuffer.allocate(event.length + profile.length).put(event).put(profile).array();
    }

}
