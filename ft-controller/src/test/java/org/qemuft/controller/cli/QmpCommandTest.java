package org.qemuft.controller.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** ftctl qmp in-process, against a peer that answers like QEMU 7.2 (replies recorded from it). */
class QmpCommandTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String GREETING = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2,"
      + " \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}";

  @TempDir Path dir;

  private final StringWriter out = new StringWriter();
  private final StringWriter err = new StringWriter();
  private final List<JsonNode> requests = new CopyOnWriteArrayList<>();
  private ServerSocketChannel server;
  private Thread peer;

  private Path sock() {
    return dir.resolve("qmp.sock");
  }

  /** One connection at a time, like QEMU; answers by command name. */
  @BeforeEach
  void startPeer() throws IOException {
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(sock()));
    peer = Thread.ofPlatform().daemon().name("fake-qemu").start(() -> {
      try {
        while (true) {
          try (SocketChannel c = server.accept()) {
            serve(c);
          } catch (IOException e) {
            if (!server.isOpen()) {
              return;
            }
          }
        }
      } catch (RuntimeException e) {
        // the test ends
      }
    });
  }

  private void serve(SocketChannel c) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c), StandardCharsets.UTF_8));
    send(c, GREETING);
    String line;
    while ((line = in.readLine()) != null) {
      ObjectNode r = (ObjectNode) JSON.readTree(line);
      requests.add(r);
      String id = r.get("id").toString();
      switch (r.path("execute").asText()) {
        case "qmp_capabilities", "stop" -> send(c, "{\"return\": {}, \"id\": " + id + "}");
        case "query-status" -> send(c, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": " + id + "}");
        case "human-monitor-command" -> send(c, "{\"return\": \"List of snapshots present on all disks:\\r\\nNone\\r\\n\", \"id\": " + id + "}");
        case "replay-break" -> send(c, "{\"id\": " + id + ", \"error\": {\"class\": \"GenericError\", \"desc\": \"setting the breakpoint is allowed only in play mode\"}}");
        case "quit" -> {
          send(c, "{\"timestamp\": {\"seconds\": 1796667594, \"microseconds\": 438800}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}");
          return; // gone before the reply, as QEMU may be
        }
        default -> send(c, "{\"id\": " + id + ", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
            + r.path("execute").asText() + " has not been found\"}}");
      }
    }
  }

  private static void send(SocketChannel c, String msg) throws IOException {
    ByteBuffer b = ByteBuffer.wrap((msg + "\r\n").getBytes(StandardCharsets.UTF_8));
    while (b.hasRemaining()) {
      c.write(b);
    }
  }

  @AfterEach
  void stopPeer() throws Exception {
    server.close();
    peer.interrupt();
    peer.join(5000);
    java.nio.file.Files.deleteIfExists(sock());
  }

  private int ftctl(String... args) {
    CommandLine cl = Ftctl.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    return cl.execute(args);
  }

  @Test
  void printsTheReturnValueAsJson() throws Exception {
    assertThat(ftctl("qmp", "--socket", sock().toString(), "query-status")).as(err.toString()).isZero();
    JsonNode status = JSON.readTree(out.toString());
    assertThat(status.get("status").asText()).isEqualTo("running");
    assertThat(out.toString().strip()).doesNotContain("\n");
    assertThat(err.toString()).isEmpty();

    out.getBuffer().setLength(0);
    assertThat(ftctl("qmp", "--socket", sock().toString(), "--pretty", "query-status")).isZero();
    assertThat(out.toString().strip()).contains("\n");
    assertThat(JSON.readTree(out.toString())).isEqualTo(status);
  }

  @Test
  void passesTheArgumentsAndPrintsHmpTextWithRaw() {
    assertThat(ftctl("qmp", "--socket", sock().toString(), "--raw", "human-monitor-command",
        "{\"command-line\": \"info snapshots\"}")).as(err.toString()).isZero();
    assertThat(out.toString()).isEqualTo("List of snapshots present on all disks:\r\nNone\r\n");
    assertThat(requests.getLast().path("arguments").path("command-line").asText()).isEqualTo("info snapshots");
  }

  @Test
  void anErrorReplyIsExitOneWithTheClassAndDescription() {
    assertThat(ftctl("qmp", "--socket", sock().toString(), "no-such-command")).isEqualTo(1);
    assertThat(err.toString())
        .contains("CommandNotFound: The command no-such-command has not been found")
        .contains(sock().toString())
        .contains("query-commands");
    assertThat(out.toString()).isEmpty();
    err.getBuffer().setLength(0);
    assertThat(ftctl("qmp", "--socket", sock().toString(), "replay-break", "{\"icount\": 5}")).isEqualTo(1);
    assertThat(err.toString()).contains("GenericError: setting the breakpoint is allowed only in play mode");
    assertThat(requests.getLast().path("arguments").path("icount").asLong()).isEqualTo(5);
  }

  @Test
  void quitSucceedsThoughQemuLeavesBeforeItsReply() {
    assertThat(ftctl("qmp", "--socket", sock().toString(), "quit")).as(err.toString()).isZero();
    assertThat(out.toString().strip()).isEqualTo("{}");
  }

  @Test
  void noQemuIsExitTwoNamingTheSocket() {
    Path none = dir.resolve("none.sock");
    assertThat(ftctl("qmp", "--socket", none.toString(), "--timeout", "2", "query-status")).isEqualTo(2);
    assertThat(err.toString()).contains("cannot connect to the QMP socket " + none).contains("-qmp unix:");
  }

  @Test
  void badUsageIsExit64() {
    String s = sock().toString();
    assertThat(ftctl("qmp", "--socket", s, "replay-break", "[1]")).isEqualTo(64);
    assertThat(err.toString()).contains("JSON-ARGS must be one JSON object");
    assertThat(ftctl("qmp", "--socket", s, "replay-break", "{\"icount\": ")).isEqualTo(64);
    assertThat(err.toString()).contains("JSON-ARGS is not valid JSON");
    assertThat(ftctl("qmp", "--socket", s, "replay-break", "{} {}")).isEqualTo(64);
    assertThat(ftctl("qmp", "--socket", s, "--timeout", "0", "query-status")).isEqualTo(64);
    assertThat(err.toString()).contains("--timeout");
    assertThat(ftctl("qmp", "--socket", s, "--timeout", "soon", "query-status")).isEqualTo(64);
    assertThat(ftctl("qmp", "query-status")).isEqualTo(64);
    assertThat(ftctl("qmp", "--socket", s)).isEqualTo(64);
    assertThat(ftctl("qmp", "--socket", s, "a", "{}", "extra")).isEqualTo(64);
    assertThat(requests).isEmpty();
  }

  @Test
  void helpExplainsWithExamples() {
    assertThat(ftctl("qmp", "--help")).isZero();
    assertThat(out.toString())
        .contains("--socket=PATH", "--timeout=SECONDS", "JSON-ARGS", "Exit codes:", "Examples",
            "query-status", "CommandNotFound");
    out.getBuffer().setLength(0);
    assertThat(ftctl("--help")).isZero();
    assertThat(out.toString()).contains("qmp");
  }
}
