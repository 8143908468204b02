// The windowed count and sum of bench/stream_features.py, done by Kafka
// Streams: per user (the message key), a 1 h count and sum of "amount" by
// event time on 1-minute tiles, the same algorithm and tile size as rtml's
// stream feature view, kept in a persistent (RocksDB) key-value store. Each
// event reads the user's windows before adding itself, as rtml does, and
// emits {"id", "count_1h", "sum_1h"} keyed like the input, so `rtml bench
// kafka` can time it from creation to output.
//
//   java -cp 'classes:lib/*' WindowAgg BOOTSTRAP INPUT OUTPUT STATE_DIR APP_ID
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

public class WindowAgg {
  static final long TILE_MS = 60_000, WINDOW_MS = 3_600_000;
  static final int SLOTS = (int) ((WINDOW_MS + 300_000) / TILE_MS) + 2;  // as rtml's ring
  static final int SLOT_BYTES = 24;  // tile, count, sum in micros

  static String field(String json, String name) {
    int at = json.indexOf("\"" + name + "\":");
    if (at < 0) return null;
    int start = at + name.length() + 3;
    while (json.charAt(start) == ' ') start++;
    if (json.charAt(start) == '"') return json.substring(start + 1, json.indexOf('"', start + 1));
    int end = start;
    while (end < json.length() && ",}] ".indexOf(json.charAt(end)) < 0) end++;
    return json.substring(start, end);
  }

  static class Windows implements Processor<String, String, String, String> {
    private ProcessorContext<String, String> context;
    private KeyValueStore<String, byte[]> store;

    @Override
    public void init(ProcessorContext<String, String> context) {
      this.context = context;
      this.store = context.getStateStore("windows");
    }

    @Override
    public void process(Record<String, String> r) {
      String v = r.value();
      String id = field(v, "id"), amount = field(v, "amount"), time = field(v, "event_time");
      if (id == null || amount == null || time == null) return;
      long t = Instant.parse(time).toEpochMilli();
      long micros = Math.round(Double.parseDouble(amount) * 1e6);
      long tile = Math.floorDiv(t, TILE_MS), from = Math.floorDiv(t - WINDOW_MS, TILE_MS);
      byte[] bytes = store.get(r.key());
      ByteBuffer b = ByteBuffer.wrap(bytes != null ? bytes : new byte[SLOTS * SLOT_BYTES]);
      long count = 0, sum = 0;
      for (int s = 0; s < SLOTS; s++) {  // read before adding, as rtml scores before adding
        long k = b.getLong(s * SLOT_BYTES);
        if (k >= from && k <= tile) {
          count += b.getLong(s * SLOT_BYTES + 8);
          sum += b.getLong(s * SLOT_BYTES + 16);
        }
      }
      int at = (int) Math.floorMod(tile, (long) SLOTS) * SLOT_BYTES;
      if (b.getLong(at) != tile) {
        b.putLong(at, tile).putLong(at + 8, 0).putLong(at + 16, 0);
      }
      b.putLong(at + 8, b.getLong(at + 8) + 1).putLong(at + 16, b.getLong(at + 16) + micros);
      store.put(r.key(), b.array());
      context.forward(r.withValue(
          "{\"id\":" + id + ",\"count_1h\":" + count + ",\"sum_1h\":" + (sum / 1e6) + "}"));
    }
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);  // rtml's stream worker is one thread
    p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    p.put(StreamsConfig.producerPrefix("linger.ms"), 1);  // rtml's producer lingers 1 ms
    Topology t = new Topology();
    t.addSource("in", args[1]);
    t.addProcessor("windows", Windows::new, "in");
    t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("windows"),
        Serdes.String(), Serdes.ByteArray()), "windows");
    t.addSink("out", args[2], "windows");
    KafkaStreams streams = new KafkaStreams(t, p);
    CountDownLatch done = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING) System.out.println("RUNNING");
      System.out.flush();
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      done.countDown();
    }));
    streams.start();
    done.await();
  }
}
