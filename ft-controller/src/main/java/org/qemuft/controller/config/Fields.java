package org.qemuft.controller.config;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads one mapping of the configuration tree, remembering its path so that every complaint
 * names the field ({@code vm.memoryMiB: ...}), and refusing keys nobody reads.
 */
final class Fields {
  private static final Pattern SIZE = Pattern.compile("(?i)\\s*(\\d+)\\s*(B|KiB|MiB|GiB|K|M|G)?\\s*");
  private static final Pattern DURATION = Pattern.compile("(?i)\\s*(\\d+)\\s*(ms|s|m)?\\s*");

  private final String file;
  private final String path;
  private final JsonNode node;
  private final List<String> read = new ArrayList<>();

  private Fields(String file, String path, JsonNode node) {
    this.file = file;
    this.path = path;
    this.node = node;
  }

  static Fields root(String file, JsonNode node) throws ConfigException {
    if (node == null || node.isMissingNode() || node.isNull()) {
      throw new ConfigException(file + ": the file is empty");
    }
    if (!node.isObject()) {
      throw new ConfigException(file + ": the top level must be a mapping of sections (pair:, vm:, ...)");
    }
    return new Fields(file, "", node);
  }

  ConfigException error(String field, String reason) {
    return new ConfigException(file + ": " + name(field) + ": " + reason);
  }

  private String name(String field) {
    return path.isEmpty() ? field : path + "." + field;
  }

  private JsonNode get(String field) {
    read.add(field);
    JsonNode v = node.get(field);
    return v == null || v.isNull() ? null : v;
  }

  boolean has(String field) {
    JsonNode v = node.get(field);
    return v != null && !v.isNull();
  }

  Fields section(String field, boolean required) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      if (required) {
        throw error(field, "missing (this section is required)");
      }
      return new Fields(file, name(field), com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode());
    }
    if (!v.isObject()) {
      throw error(field, "must be a mapping of settings, not " + describe(v));
    }
    return new Fields(file, name(field), v);
  }

  String string(String field, String dflt) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      if (dflt == null) {
        throw error(field, "missing (required)");
      }
      return dflt;
    }
    if (!v.isValueNode() || v.isBoolean()) {
      throw error(field, "must be a string, not " + describe(v));
    }
    return v.asText();
  }

  String string(String field, String dflt, Pattern allowed, String expected) throws ConfigException {
    String s = string(field, dflt);
    if (!allowed.matcher(s).matches()) {
      throw error(field, "'" + s + "' is not " + expected);
    }
    return s;
  }

  long integer(String field, long dflt, long min, long max) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      return dflt;
    }
    if (!v.canConvertToLong() || !v.isIntegralNumber()) {
      throw error(field, "must be a whole number, not " + describe(v));
    }
    return inRange(field, v.asLong(), min, max, "");
  }

  /** A byte size: a number of bytes or a string with a unit (64KiB, 16MiB, 1GiB). */
  long size(String field, long dflt, long min, long max) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      return dflt;
    }
    long bytes;
    if (v.isIntegralNumber()) {
      bytes = v.asLong();
    } else {
      Matcher m = SIZE.matcher(v.asText());
      if (!v.isTextual() || !m.matches()) {
        throw error(field, "must be a size such as 4MiB, 65536 or 1GiB, not " + describe(v));
      }
      long unit = switch (m.group(2) == null ? "b" : m.group(2).toLowerCase(Locale.ROOT)) {
        case "kib", "k" -> 1L << 10;
        case "mib", "m" -> 1L << 20;
        case "gib", "g" -> 1L << 30;
        default -> 1L;
      };
      try {
        bytes = Math.multiplyExact(Long.parseLong(m.group(1)), unit);
      } catch (ArithmeticException | NumberFormatException e) {
        throw error(field, "'" + v.asText() + "' is too large");
      }
    }
    return inRange(field, bytes, min, max, " bytes");
  }

  /** A duration: milliseconds as a number, or a string with a unit (250ms, 2s, 1m). */
  Duration duration(String field, Duration dflt, Duration min, Duration max) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      return dflt;
    }
    long ms;
    if (v.isIntegralNumber()) {
      ms = v.asLong();
    } else {
      Matcher m = DURATION.matcher(v.asText());
      if (!v.isTextual() || !m.matches()) {
        throw error(field, "must be a duration such as 250ms, 2s or 1m, not " + describe(v));
      }
      long unit = switch (m.group(2) == null ? "ms" : m.group(2).toLowerCase(Locale.ROOT)) {
        case "s" -> 1000;
        case "m" -> 60_000;
        default -> 1;
      };
      ms = Long.parseLong(m.group(1)) * unit;
    }
    inRange(field, ms, min.toMillis(), max.toMillis(), " ms");
    return Duration.ofMillis(ms);
  }

  boolean bool(String field, boolean dflt) throws ConfigException {
    JsonNode v = get(field);
    if (v == null) {
      return dflt;
    }
    if (!v.isBoolean()) {
      throw error(field, "must be true or false, not " + describe(v));
    }
    return v.asBoolean();
  }

  /** A path; relative paths are resolved against {@code base} (the config file's directory). */
  Path path(String field, Path base, String dflt) throws ConfigException {
    String s = string(field, dflt);
    if (s.isBlank()) {
      throw error(field, "is empty");
    }
    return base.resolve(s).normalize();
  }

  List<String> strings(String field) throws ConfigException {
    JsonNode v = get(field);
    List<String> out = new ArrayList<>();
    if (v == null) {
      return out;
    }
    if (!v.isArray()) {
      throw error(field, "must be a list, not " + describe(v));
    }
    for (int i = 0; i < v.size(); i++) {
      JsonNode e = v.get(i);
      if (!e.isTextual() || e.asText().isBlank()) {
        throw error(field + "[" + i + "]", "must be a non-empty string, not " + describe(e));
      }
      out.add(e.asText());
    }
    return out;
  }

  /** Refuses settings that nothing read: a typo must not silently fall back to a default. */
  void noOthers() throws ConfigException {
    Iterator<String> names = node.fieldNames();
    while (names.hasNext()) {
      String n = names.next();
      if (!read.contains(n)) {
        String hint = closest(n, read);
        throw error(n, "unknown setting" + (hint == null ? "" : " (did you mean '" + hint + "'?)")
            + "; known here: " + String.join(", ", read));
      }
    }
  }

  private long inRange(String field, long v, long min, long max, String unit) throws ConfigException {
    if (v < min || v > max) {
      throw error(field, v + unit + " is outside the allowed range " + min + ".." + max + unit);
    }
    return v;
  }

  private static String describe(JsonNode v) {
    if (v.isObject()) {
      return "a mapping";
    }
    if (v.isArray()) {
      return "a list";
    }
    return "'" + v.asText() + "'";
  }

  private static String closest(String name, List<String> known) {
    String best = null;
    int bestDist = Integer.MAX_VALUE;
    for (String k : Set.copyOf(known)) {
      int d = distance(name.toLowerCase(Locale.ROOT), k.toLowerCase(Locale.ROOT));
      // Close enough to be a typo: at most half the longer name (and always 2) edits away.
      if (d < bestDist && d <= Math.max(2, Math.max(name.length(), k.length()) / 2)) {
        bestDist = d;
        best = k;
      }
    }
    return best;
  }

  private static int distance(String a, String b) {
    int[] prev = new int[b.length() + 1];
    int[] cur = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
        cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.length()];
  }
}
