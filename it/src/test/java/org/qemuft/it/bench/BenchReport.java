package org.qemuft.it.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * One benchmark's figures as the JSON object scripts/bench prints: what ran, when, with which
 * command, under which load (the machine is shared: the load average before and after says how
 * far to trust it), then the benchmark's own fields. {@link #write()} puts it into
 * build/bench/NAME.json. Also the few statistics the benchmarks share.
 */
final class BenchReport {
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private final String name;
  private final ObjectNode root = JSON.createObjectNode();
  private final ObjectNode conditions;

  /** Starts the report of benchmark {@code name} (run by {@code scripts/bench name}) now. */
  BenchReport(String name) {
    this.name = name;
    root.put("benchmark", name);
    root.put("date", Instant.now().toString());
    root.put("command", "scripts/bench " + name);
    conditions = root.putObject("conditions");
    conditions.put("cpus", Runtime.getRuntime().availableProcessors());
    conditions.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
    conditions.put("loadAverageBefore", loadAverage());
  }

  /** The top-level object, for the benchmark's own fields. */
  ObjectNode root() {
    return root;
  }

  /** The conditions object, for the benchmark's own settings. */
  ObjectNode conditions() {
    return conditions;
  }

  /** Notes the load now and writes build/bench/NAME.json. */
  void write() throws IOException {
    conditions.put("loadAverageAfter", loadAverage());
    Path dir = Path.of(System.getProperty("qemuft.bench.dir"));
    Files.createDirectories(dir);
    Files.writeString(dir.resolve(name + ".json"), JSON.writeValueAsString(root));
  }

  /** A whole-number setting from the environment ({@code dflt} when unset), e.g. QEMUFT_BENCH_ROUNDS. */
  static int env(String name, int dflt) {
    String v = System.getenv(name);
    try {
      return v == null || v.isBlank() ? dflt : Integer.parseInt(v.strip());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + "=" + v + " is not a whole number", e);
    }
  }

  static double median(Collection<Double> values) {
    List<Double> s = new ArrayList<>(values);
    s.sort(null);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

  static double round1(double v) {
    return Math.round(v * 10) / 10.0;
  }

  static double round3(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  /** /proc/loadavg as it reads now. */
  static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).strip();
    } catch (IOException e) {
      return "unknown (" + e.getMessage() + ")";
    }
  }
}
