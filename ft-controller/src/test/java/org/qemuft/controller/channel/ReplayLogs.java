package org.qemuft.controller.channel;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * Real QEMU 7.2 replay logs from module native's test resources (read by path through the
 * {@code qemuft.root} property the build sets), cut into whole events as the shipper cuts them.
 */
public final class ReplayLogs {
  private ReplayLogs() {}

  /** The events of {@code native/src/test/resources/org/qemuft/replaylog/NAME.bin.gz}, file header removed. */
  public static byte[] events(String name) throws IOException {
    String root = System.getProperty("qemuft.root");
    if (root == null) {
      throw new IllegalStateException("system property qemuft.root is not set (the Maven build sets it)");
    }
    Path p = Path.of(root, "native/src/test/resources/org/qemuft/replaylog", name + ".bin.gz");
    byte[] log;
    try (InputStream in = new GZIPInputStream(Files.newInputStream(p))) {
      log = in.readAllBytes();
    }
    return java.util.Arrays.copyOfRange(log, ReplayLogScanner.FILE_HEADER_SIZE, log.length);
  }

  /** Event end offsets of a headerless event stream. */
  public static long[] eventEnds(byte[] events) throws IOException {
    List<Long> ends = new ArrayList<>();
    byte[] withHeader = new byte[ReplayLogScanner.FILE_HEADER_SIZE + events.length];
    withHeader[0] = 0x00;
    withHeader[1] = (byte) 0xe0;
    withHeader[2] = 0x20;
    withHeader[3] = 0x0c;
    System.arraycopy(events, 0, withHeader, ReplayLogScanner.FILE_HEADER_SIZE, events.length);
    ReplayLogScanner s = ReplayLogScanner.forLogFile((k, st, e, ic) -> ends.add(e - ReplayLogScanner.FILE_HEADER_SIZE), false);
    try {
      s.feed(withHeader, 0, withHeader.length);
    } catch (org.qemuft.replaylog.ReplayLogException e) {
      throw new IOException(e);
    }
    return ends.stream().mapToLong(Long::longValue).toArray();
  }

  /**
   * Cuts the stream into chunks of whole events, each at least {@code min} bytes (or the rest)
   * and at most about {@code max}; returns chunk boundaries, starting with 0 and ending with the
   * stream's length.
   */
  static long[] cut(byte[] events, long seed, int min, int max) throws IOException {
    long[] ends = eventEnds(events);
    SplittableRandom r = new SplittableRandom(seed);
    List<Long> bounds = new ArrayList<>();
    bounds.add(0L);
    long start = 0;
    int target = min + r.nextInt(max - min + 1);
    for (long e : ends) {
      if (e - start >= target) {
        bounds.add(e);
        start = e;
        target = min + r.nextInt(max - min + 1);
      }
    }
    if (start != events.length) {
      bounds.add((long) events.length);
    }
    return bounds.stream().mapToLong(Long::longValue).toArray();
  }
}
