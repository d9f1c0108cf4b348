// Jedis check: runs the same fixed script as the other client checks with Jedis and its DEFAULT
// client configuration (only the password set), printing one JSON object of what each step
// answered. Used by test/integration/redis-clients.test.ts.
//
// Usage: java -cp 'lib/*:classes' JedisCheck HOST PORT PREFIX PASSWORD

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.HostAndPort;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Protocol;
import redis.clients.jedis.Transaction;
import redis.clients.jedis.params.ScanParams;
import redis.clients.jedis.resps.ScanResult;

public class JedisCheck {
  public static void main(String[] args) {
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    String prefix = args[2];
    DefaultJedisClientConfig config = DefaultJedisClientConfig.builder().password(args[3]).build();
    try (Jedis j = new Jedis(new HostAndPort(host, port), config)) {
      StringBuilder out = new StringBuilder("{");
      Object hello = j.sendCommand(Protocol.Command.HELLO);
      field(out, "hello", str(hello));
      j.set(k(prefix, "a"), "1");
      j.set(k(prefix, "b"), "2");
      field(out, "get", j.get(k(prefix, "a")));
      field(out, "getAbsent", j.get(k(prefix, "absent")));
      List<String> mget = j.mget(k(prefix, "a"), k(prefix, "absent"), k(prefix, "b"));
      field(out, "mget", String.valueOf(mget));

      Pipeline p = j.pipelined();
      for (int i = 0; i < 50; i++) p.set(k(prefix, String.format("p%02d", i)), String.valueOf(i));
      p.get(k(prefix, "p49"));
      List<Object> piped = p.syncAndReturnAll();
      field(out, "pipelineLast", String.valueOf(piped.get(50)));

      List<String> scanned = new ArrayList<>();
      ScanParams params = new ScanParams().match(prefix + ":p*").count(7);
      String cursor = ScanParams.SCAN_POINTER_START;
      do {
        ScanResult<String> page = j.scan(cursor, params);
        scanned.addAll(page.getResult());
        cursor = page.getCursor();
      } while (!cursor.equals(ScanParams.SCAN_POINTER_START));
      Collections.sort(scanned);
      field(out, "scanned", String.valueOf(scanned.size()));
      field(out, "scanFirst", scanned.get(0));

      Transaction t = j.multi();
      t.set(k(prefix, "tx"), "t");
      t.get(k(prefix, "tx"));
      field(out, "tx", String.valueOf(t.exec()));

      String abort = "";
      try {
        Transaction bad = j.multi();
        bad.set(k(prefix, "aborted"), "t");
        bad.incr(k(prefix, "counter"));
        bad.exec();
      } catch (RuntimeException e) {
        abort = e.getMessage();
      }
      field(out, "txAbort", abort);
      field(out, "txAbortApplied", String.valueOf(j.exists(k(prefix, "aborted"), k(prefix, "counter"))));

      String setnx = "";
      try {
        j.setnx(k(prefix, "a"), "x");
      } catch (RuntimeException e) {
        setnx = e.getMessage();
      }
      field(out, "setnx", setnx);
      field(out, "del", String.valueOf(j.del(k(prefix, "a"), k(prefix, "b"), k(prefix, "absent"))));
      out.setCharAt(out.length() - 1, '}');
      System.out.println(out);
    }
  }

  static String k(String prefix, String s) {
    return prefix + ":" + s;
  }

  /** A reply as text: bulk strings decoded, lists and nested replies in brackets. */
  static String str(Object o) {
    if (o instanceof byte[] b) return new String(b, StandardCharsets.UTF_8);
    if (o instanceof List<?> l) {
      List<String> parts = new ArrayList<>();
      for (Object x : l) parts.add(str(x));
      return parts.toString();
    }
    return String.valueOf(o);
  }

  static void field(StringBuilder out, String name, String value) {
    out.append('"').append(name).append("\":");
    if (value == null) out.append("null");
    else out.append('"').append(value.replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
    out.append(',');
  }
}
