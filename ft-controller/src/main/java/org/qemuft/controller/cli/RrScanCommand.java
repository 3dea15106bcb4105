package org.qemuft.controller.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code ftctl rr-scan}: checks a QEMU 7.2 replay log and summarises it as one JSON object. */
@Command(
    name = "rr-scan",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    usageHelpAutoWidth = true,
    description = {
      "Checks that FILE is a QEMU 7.2 record/replay log (REPLAY_VERSION 0x00e0200c)",
      "and prints one JSON object on stdout, e.g.",
      "  {\"version\":\"0x00e0200c\",\"events\":5,\"icount\":1500,\"complete\":true,",
      "   \"ended\":true,\"bytes\":25,\"lastEventEnd\":25,\"byKind\":{\"INSTRUCTION\":2,...}}",
      "",
      "  version       the header's version; null with --headerless",
      "  events        how many whole events the log holds",
      "  icount        instructions recorded: the sum of the INSTRUCTION events, i.e.",
      "                the guest's instruction count at the last whole event for a",
      "                log recorded from a fresh start (with -loadvm or rrsnapshot,",
      "                add the snapshot's count). QMP query-replay reports the",
      "                VM's current count: never less, and equal once END is written",
      "  complete      the file ends on a whole event. A log QEMU finished writes",
      "                END last; a log still being written, or cut, may end",
      "                mid-event (false): its events up to lastEventEnd are good",
      "  ended         END was seen: QEMU exited cleanly (quit, SIGTERM, power-off)",
      "  bytes         bytes read",
      "  lastEventEnd  offset just past the last whole event",
      "  byKind        events by kind (docs/replay-log.md explains each kind)",
      "",
      "FILE may be '-' for standard input. A log QEMU wrote to a file starts with a",
      "12-byte header; a log QEMU wrote into a pipe has none: use --headerless.",
      "",
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:the log is valid (complete or not: see \"complete\")",
      "1:the log is corrupt or from another QEMU version: stderr names the file, the offset and"
          + " what is wrong",
      "2:FILE cannot be read",
      "64:bad usage"
    },
    footer = {
      "",
      "Examples:",
      "  ftctl rr-scan /var/lib/qemu-ft/vm1/replay.bin",
      "  ftctl rr-scan --headerless - < captured-stream.bin",
      "  ftctl rr-scan --unfinished replay.bin   # its QEMU still runs, or was killed"
    })
final class RrScanCommand implements Callable<Integer> {
  private static final int BUFFER_SIZE = 1 << 20;

  @Parameters(
      index = "0",
      paramLabel = "FILE",
      description = "The replay log to scan (the file named by -icount ...,rrfile=), or '-' for stdin.")
  String file;

  @Option(
      names = "--headerless",
      description =
          "The input has no 12-byte header: events start at its first byte. This is what QEMU"
              + " writes into a pipe (followed, after END, by the 4 bytes 00 e0 20 0c, which are"
              + " accepted).")
  boolean headerless;

  @Option(
      names = "--unfinished",
      description =
          "Accept a header that is still all zero. QEMU writes the version only when it exits,"
              + " so the log of a QEMU that is still recording, or was killed, starts with 12 zero"
              + " bytes; without this option such a log is refused.")
  boolean unfinished;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    if (headerless && unfinished) {
      err.println(
          "ftctl rr-scan: --unfinished and --headerless do not go together: --unfinished is about"
              + " the 12-byte header, and --headerless says there is none.");
      err.flush();
      return Ftctl.EXIT_USAGE;
    }
    long[] counts = new long[ReplayEventKind.CODE_COUNT];
    ReplayLogScanner scanner =
        headerless
            ? ReplayLogScanner.forStream((kind, start, end, icount) -> counts[kind]++, 0, 0)
            : ReplayLogScanner.forLogFile((kind, start, end, icount) -> counts[kind]++, unfinished);
    String name = "-".equals(file) ? "standard input" : file;
    int version = 0;
    byte[] buf = new byte[BUFFER_SIZE];
    try (InputStream in = open()) {
      int n;
      while ((n = in.readNBytes(buf, 0, buf.length)) > 0) {
        if (!headerless && scanner.offset() == 0 && n >= 4) {
          version = ((buf[0] & 0xff) << 24) | ((buf[1] & 0xff) << 16) | ((buf[2] & 0xff) << 8) | (buf[3] & 0xff);
        }
        scanner.feed(buf, 0, n);
      }
    } catch (ReplayLogException e) {
      err.printf(
          "ftctl rr-scan: %s is not a valid QEMU 7.2 replay log: %s.%n"
              + "  Before offset %d: %d whole events (icount %d), the last ending at offset %d;"
              + " nothing after that point can be replayed.%n",
          name, e.getMessage(), e.offset(), scanner.events(), scanner.icount(), scanner.safeEnd());
      if (!headerless && version == 0 && e.offset() == 0) {
        err.printf("  To scan its events anyway: ftctl rr-scan --unfinished %s%n", file);
      }
      err.flush();
      return Ftctl.EXIT_FAILED;
    } catch (NoSuchFileException e) {
      return cannotRead(err, name, "no such file");
    } catch (AccessDeniedException e) {
      return cannotRead(err, name, "permission denied");
    } catch (IOException e) {
      return cannotRead(err, name, e.getMessage() == null ? e.toString() : e.getMessage());
    }

    ObjectMapper json = new ObjectMapper();
    ObjectNode out = json.createObjectNode();
    if (headerless || scanner.offset() < ReplayLogScanner.FILE_HEADER_SIZE) {
      out.putNull("version");
    } else {
      out.put("version", String.format("0x%08x", version));
    }
    out.put("events", scanner.events());
    out.put("icount", scanner.icount());
    out.put("complete", scanner.atEventBoundary());
    out.put("ended", scanner.endSeen());
    out.put("bytes", scanner.offset());
    out.put("lastEventEnd", scanner.safeEnd());
    ObjectNode byKind = out.putObject("byKind");
    for (int k = 0; k < counts.length; k++) {
      if (counts[k] > 0) {
        byKind.put(ReplayEventKind.of(k).name(), counts[k]);
      }
    }
    PrintWriter stdout = spec.commandLine().getOut();
    stdout.println(out.toString());
    stdout.flush();
    return Ftctl.EXIT_OK;
  }

  private InputStream open() throws IOException {
    if ("-".equals(file)) {
      // Not closed with the command: stdin belongs to the process.
      return new java.io.FilterInputStream(System.in) {
        @Override
        public void close() {}
      };
    }
    Path p = Path.of(file);
    if (Files.isDirectory(p)) {
      throw new IOException("it is a directory, not a replay log");
    }
    return Files.newInputStream(p);
  }

  private static int cannotRead(PrintWriter err, String name, String why) {
    err.printf(
        "ftctl rr-scan: cannot read %s: %s. Check the path (the file named by rrfile= in QEMU's"
            + " -icount option) and that this user may read it.%n",
        name, why);
    err.flush();
    return Ftctl.EXIT_CONNECTION;
  }
}
