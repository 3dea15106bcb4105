package org.qemuft.qmp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The core client against hostile and well-behaved test peers. */
@SuppressWarnings("try") // a peer in try-with-resources is there to be closed, not used
class QmpClientTest {
  /** Failure detector for "nothing hangs"; generous, the machine is shared. */
  private static final Duration HANG = Duration.ofSeconds(60);
  private static final Duration T = Duration.ofSeconds(20);

  @TempDir Path dir;

  private Path sock() {
    return dir.resolve("qmp.sock");
  }

  /** Threads of clients for this test's socket: none may outlive the test. */
  static List<String> clientThreads(Path socket) {
    List<String> names = new ArrayList<>();
    for (Thread t : Thread.getAllStackTraces().keySet()) {
      if (t.isAlive() && t.getName().startsWith("qmp-") && t.getName().endsWith(" " + socket)) {
        names.add(t.getName());
      }
    }
    return names;
  }

  @AfterEach
  void noClientThreadIsLeft() {
    assertThat(clientThreads(sock())).as("client threads after the test").isEmpty();
  }

  @Test
  void greetsNegotiatesAndRunsCommandsWithArguments() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          ObjectNode r = c.read();
          c.reply(r, "{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
          r = c.read();
          c.reply(r, "{\"got\": " + r.get("arguments") + ", \"command\": \"" + r.get("execute").asText() + "\"}");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThat(qmp.greeting().version()).isEqualTo(new QemuVersion(7, 2, 22, "Debian 1:7.2+dfsg-7+deb12u18"));
      assertThat(qmp.greeting().capabilities()).containsExactly("oob");
      assertThat(qmp.socket()).isEqualTo(sock());
      assertThat(qmp.execute("query-status", null).path("status").asText()).isEqualTo("running");
      ObjectNode args = TestPeer.JSON.createObjectNode().put("icount", 12345L).put("name", "a\"b\\c");
      JsonNode r = qmp.execute("replay-break", args, T);
      assertThat(r.get("got").toString()).isEqualTo(args.toString());
      assertThat(r.get("command").asText()).isEqualTo("replay-break");
      assertThat(qmp.isOpen()).isTrue();
      assertThat(peer.failures).isEmpty();
    }
  }

  @Test
  void anErrorReplyIsQmpErrorExceptionAndTheConnectionStaysUsable() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.error(c.read(), "CommandNotFound", "The command no-such-command has not been found");
          c.reply(c.read(), "{}");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("no-such-command", null, T))
          .isExactlyInstanceOf(QmpErrorException.class)
          .hasMessageContaining(sock().toString())
          .hasMessageContaining("'no-such-command'")
          .hasMessageContaining("CommandNotFound: The command no-such-command has not been found")
          .satisfies(e -> {
            QmpErrorException q = (QmpErrorException) e;
            assertThat(q.errorClass()).isEqualTo("CommandNotFound");
            assertThat(q.description()).isEqualTo("The command no-such-command has not been found");
            assertThat(q.command()).isEqualTo("no-such-command");
          });
      assertThat(qmp.execute("stop", null, T).isEmpty()).isTrue();
    }
  }

  @Test
  void garbageInsteadOfAGreetingIsAProtocolViolation() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
      c.sendRaw("hello, I am not QEMU\n");
      c.drain();
    })) {
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> QmpClient.connect(sock(), T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining(sock().toString())
          .hasMessageContaining("'hello, I am not QEMU'")
          .hasMessageContaining("not a human monitor (-monitor)"));
    }
  }

  @Test
  void aHumanMonitorBannerIsRecognisedAsNotQmp() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
      c.sendRaw("QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ");
      c.drain();
    })) {
      assertThatThrownBy(() -> QmpClient.connect(sock(), T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("'QEMU 7.2.22 monitor - type 'help' for more information\\r\\n(qemu)'")
          .hasMessageContaining("-qmp");
    }
  }

  @Test
  void aJsonMessageThatIsNoGreetingIsAProtocolViolation() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
      c.event("STOP", null);
      c.drain();
    })) {
      assertThatThrownBy(() -> QmpClient.connect(sock(), T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("no QMP greeting")
          .hasMessageContaining("\"event\":\"STOP\"");
    }
  }

  @Test
  void aPeerThatNeverGreetsFailsConnectWithinItsTimeout() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), TestPeer.Conn::drain)) {
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> QmpClient.connect(sock(), Duration.ofMillis(500)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining(sock().toString())
          .hasMessageContaining("no QMP greeting within 500 ms")
          .hasMessageContaining("one QMP client at a time"));
    }
  }

  @Test
  void aPeerThatClosesBeforeGreetingIsAConnectionFailure() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), TestPeer.Conn::close)) {
      assertThatThrownBy(() -> QmpClient.connect(sock(), T))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("closed the QMP connection " + sock() + " before sending the QMP greeting");
    }
  }

  @Test
  void malformedJsonInAReplyFailsTheCallAndEndsTheConnection() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.sendRaw("{\"return\": nope}\r\n");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("no reply to 'query-status'")
          .hasMessageContaining("the peer on " + sock() + " broke the QMP protocol")
          .hasMessageContaining("'{\"return\": nope}'")
          .hasMessageContaining("not JSON"));
      assertThat(qmp.isOpen()).isFalse();
      assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("cannot run 'query-status': the QMP connection to " + sock() + " is closed")
          .hasMessageContaining("nope")
          .hasCauseExactlyInstanceOf(QmpProtocolException.class);
    }
  }

  @Test
  void binaryGarbageIsQuotedByteByByte() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.sendRaw(new byte[] {(byte) 0xff, (byte) 0xfe, 0x01, 'x', '\n'});
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("'\\xff\\xfe\\x01x'");
    }
  }

  @Test
  void aPeerThatClosesMidReplyFailsTheCallNamingWhatArrived() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.sendRaw("{\"return\": {\"status\": \"runn");
          c.close();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("no reply to 'query-status'")
          .hasMessageContaining("QEMU closed the QMP connection " + sock() + " in the middle of a message")
          .hasMessageContaining("'{\"return\": {\"status\": \"runn'")
          .hasMessageContaining("did QEMU exit, or was it killed?"));
      assertThat(qmp.isOpen()).isFalse();
    }
  }

  @Test
  void anEndlessLineIsRefusedAtTheMessageLimit() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.sendRaw("{\"return\": \"");
          byte[] chunk = new byte[64 << 10];
          Arrays.fill(chunk, (byte) 'a');
          while (true) {
            c.sendRaw(chunk); // until the client gives up and closes
          }
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("no reply to 'query-status'")
          .hasMessageContaining("without the end of a JSON message")
          .hasMessageContaining("the limit is " + QmpClient.MAX_MESSAGE_BYTES + " bytes")
          .hasMessageContaining("It starts with: '{\"return\": \"aaaa")
          .satisfies(e -> assertThat(e.getMessage().length()).isLessThan(1000)));
    }
  }

  @Test
  void aReplyWithAnIdNeverSentIsAProtocolViolation() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.send("{\"return\": {}, \"id\": 999}");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("no reply to 'query-status'")
          .hasMessageContaining("a reply to request id 999, which this client never sent");
    }
  }

  @Test
  void anErrorWithoutIdIsAProtocolViolation() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid keyword 'x'\"}}");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("an error without an id, which means it could not parse a request: "
              + "GenericError: JSON parse error, invalid keyword 'x'");
    }
  }

  @Test
  void aReplyThatComesAfterItsTimeoutIsDroppedAndTheConnectionStaysUsable() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          ObjectNode slow = c.read();
          ObjectNode next = c.read(); // sent after the slow call gave up
          c.reply(slow, "\"late\"");
          c.reply(next, "\"on time\"");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("slow", null, Duration.ofMillis(300)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("QEMU on " + sock() + " did not reply to 'slow' within 300 ms")
          .hasMessageContaining("The connection stays open");
      assertThat(qmp.isOpen()).isTrue();
      assertThat(qmp.execute("next", null, T).asText()).isEqualTo("on time");
    }
  }

  @Test
  void eventsInterleavedWithRepliesReachTheirListenersInOrder() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          ObjectNode r = c.read();
          c.event("STOP", null);
          c.event("JOB_STATUS_CHANGE", "{\"status\": \"created\", \"id\": \"j1\"}");
          c.reply(r, "{\"between\": true}");
          c.event("RESUME", null);
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      BlockingQueue<QmpEvent> all = new LinkedBlockingQueue<>();
      BlockingQueue<QmpEvent> jobs = new LinkedBlockingQueue<>();
      qmp.onEvent(null, e -> {
        if (e.name().equals("STOP")) {
          throw new IllegalStateException("a listener that throws must not stop the others");
        }
      });
      qmp.onEvent(null, all::add);
      Subscription jobSub = qmp.onEvent("JOB_STATUS_CHANGE", jobs::add);
      assertThat(qmp.execute("cont", null, T).path("between").asBoolean()).isTrue();
      List<String> names = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        names.add(all.poll(T.toMillis(), TimeUnit.MILLISECONDS).name());
      }
      assertThat(names).containsExactly("STOP", "JOB_STATUS_CHANGE", "RESUME");
      QmpEvent job = jobs.poll(T.toMillis(), TimeUnit.MILLISECONDS);
      assertThat(job.data().path("status").asText()).isEqualTo("created");
      assertThat(job.timestamp()).isEqualTo(Instant.ofEpochSecond(1700000000, 250_000_000));
      assertThat(jobs).isEmpty();
      jobSub.close();
      jobSub.close();
      assertThat(qmp.droppedEvents()).isZero();
    }
  }

  @Test
  void aBlockedListenerDelaysNoReply() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch inListener = new CountDownLatch(1);
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          ObjectNode r = c.read();
          c.event("STOP", null);
          c.event("RESUME", null);
          c.reply(r, "{}");
          c.reply(c.read(), "{}");
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      qmp.onEvent("STOP", e -> {
        inListener.countDown();
        try {
          release.await();
        } catch (InterruptedException ex) {
          Thread.currentThread().interrupt();
        }
      });
      assertThat(qmp.execute("stop", null, T)).isNotNull();
      assertThat(inListener.await(T.toMillis(), TimeUnit.MILLISECONDS)).isTrue();
      assertThat(qmp.execute("query-status", null, T)).isNotNull();
      release.countDown();
    }
  }

  @Test
  void concurrentCallersGetTheirOwnRepliesWhenAnsweredOutOfOrder() throws Exception {
    int n = 8;
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          List<ObjectNode> requests = new ArrayList<>();
          for (int i = 0; i < n; i++) {
            requests.add(c.read());
          }
          for (int i = n - 1; i >= 0; i--) {
            c.event("NOISE", null);
            c.reply(requests.get(i), "{\"n\": " + requests.get(i).path("arguments").path("n") + "}");
          }
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      ExecutorService pool = Executors.newFixedThreadPool(n);
      try {
        List<Future<Integer>> answers = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          int mine = i;
          answers.add(pool.submit(() ->
              qmp.execute("echo", TestPeer.JSON.createObjectNode().put("n", mine), T).path("n").asInt()));
        }
        for (int i = 0; i < n; i++) {
          assertThat(answers.get(i).get(HANG.toSeconds(), TimeUnit.SECONDS)).isEqualTo(i);
        }
      } finally {
        pool.shutdownNow();
      }
    }
  }

  @Test
  void closeFailsAWaitingCallAndLeavesNoThread() throws Exception {
    CountDownLatch requested = new CountDownLatch(1);
    try (TestPeer peer = TestPeer.start(sock(), c -> {
      c.handshake();
      c.read();
      requested.countDown();
      c.drain();
    })) {
      QmpClient qmp = QmpClient.connect(sock(), T);
      assertThat(clientThreads(sock())).hasSize(3);
      ExecutorService pool = Executors.newSingleThreadExecutor();
      try {
        Future<JsonNode> call = pool.submit(() -> qmp.execute("query-status", null, HANG));
        assertThat(requested.await(T.toMillis(), TimeUnit.MILLISECONDS)).isTrue();
        qmp.close();
        assertThatThrownBy(() -> call.get(HANG.toSeconds(), TimeUnit.SECONDS))
            .cause()
            .isExactlyInstanceOf(QmpConnectionException.class)
            .hasMessageContaining("the QMP client for " + sock() + " was closed while 'query-status' waited");
      } finally {
        pool.shutdownNow();
      }
      assertThat(clientThreads(sock())).isEmpty();
      assertThat(qmp.isOpen()).isFalse();
      qmp.close();
      assertThatThrownBy(() -> qmp.execute("cont", null, T))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining("cannot run 'cont'");
    }
  }

  @Test
  void aListenerMayCloseTheClient() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
      c.handshake();
      c.reply(c.read(), "{}");
      c.event("SHUTDOWN", "{\"guest\": true, \"reason\": \"guest-shutdown\"}");
      c.drain();
    })) {
      QmpClient qmp = QmpClient.connect(sock(), T);
      CountDownLatch closed = new CountDownLatch(1);
      qmp.onEvent("SHUTDOWN", e -> {
        qmp.close();
        closed.countDown();
      });
      qmp.execute("cont", null, T);
      assertThat(closed.await(T.toMillis(), TimeUnit.MILLISECONDS)).isTrue();
      qmp.close();
      assertThat(qmp.isOpen()).isFalse();
    }
  }

  @Test
  void eventsSentBeforeThePeerLeavesAreStillDelivered() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.event("SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
          c.close();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      BlockingQueue<QmpEvent> got = new LinkedBlockingQueue<>();
      qmp.onEvent(null, got::add);
      assertThatThrownBy(() -> qmp.execute("quit", null, T)).isExactlyInstanceOf(QmpConnectionException.class);
      QmpEvent e = got.poll(T.toMillis(), TimeUnit.MILLISECONDS);
      assertThat(e).isNotNull();
      assertThat(e.data().path("reason").asText()).isEqualTo("host-qmp-quit");
    }
  }

  @Test
  void aMissingSocketIsAConnectionFailureWithAHint() {
    assertThatThrownBy(() -> QmpClient.connect(sock(), T))
        .isExactlyInstanceOf(QmpConnectionException.class)
        .hasMessageContaining("cannot connect to the QMP socket " + sock())
        .hasMessageContaining("is QEMU running with -qmp unix:" + sock());
  }

  @Test
  void aStaleSocketFileIsAConnectionFailureWithAHint() throws Exception {
    try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
      s.bind(UnixDomainSocketAddress.of(sock()));
    }
    assertThat(sock()).exists();
    assertThatThrownBy(() -> QmpClient.connect(sock(), T))
        .isExactlyInstanceOf(QmpConnectionException.class)
        .hasMessageContaining("cannot connect to the QMP socket " + sock())
        .hasMessageContaining("nothing listens");
    java.nio.file.Files.delete(sock());
  }

  @Test
  void aListenerThatDoesNotAcceptFailsConnectWithinItsTimeout() throws Exception {
    List<SocketChannel> queued = new ArrayList<>();
    try (TestPeer peer = TestPeer.neverAccepting(sock(), 1)) {
      // Fill the backlog the way other clients of a busy QEMU would.
      for (int i = 0; i < 2; i++) {
        queued.add(SocketChannel.open(UnixDomainSocketAddress.of(sock())));
      }
      assertTimeoutPreemptively(HANG, () -> assertThatThrownBy(() -> QmpClient.connect(sock(), Duration.ofMillis(500)))
          .isExactlyInstanceOf(QmpConnectionException.class)
          .hasMessageContaining(sock().toString())
          .hasMessageContaining("within 500 ms: the listener does not accept"));
    } finally {
      for (SocketChannel c : queued) {
        c.close();
      }
    }
  }

  @Test
  void usingTheApiWronglyIsIllegalArgument() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute(" ", null, T)).isExactlyInstanceOf(IllegalArgumentException.class);
      assertThatThrownBy(() -> qmp.execute("stop", TestPeer.JSON.readTree("[1]"), T))
          .isExactlyInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("'stop' must be a JSON object, not array [1]");
      assertThatThrownBy(() -> qmp.execute("stop", null, Duration.ZERO))
          .isExactlyInstanceOf(IllegalArgumentException.class);
    }
  }

  @Test
  void aSecondGreetingIsAProtocolViolation() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.handshake();
          c.read();
          c.send(TestPeer.GREETING);
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThatThrownBy(() -> qmp.execute("query-status", null, T))
          .isExactlyInstanceOf(QmpProtocolException.class)
          .hasMessageContaining("a second greeting");
    }
  }

  @Test
  void prettyPrintedMessagesSpanningLinesAreRead() throws Exception {
    try (TestPeer peer = TestPeer.start(sock(), c -> {
          c.sendRaw(TestPeer.GREETING.replace(", ", ",\n    ") + "\n");
          ObjectNode caps = c.read();
          c.sendRaw("{\n    \"return\": {\n    },\n    \"id\": " + caps.get("id") + "\n}\n");
          ObjectNode r = c.read();
          byte[] reply = ("{\n \"return\": {\"text\": \"\u00e9t\u00e9 \\u00e9\"},\n \"id\": " + r.get("id") + "\n}\n")
              .getBytes(StandardCharsets.UTF_8);
          for (byte b : reply) {
            c.sendRaw(new byte[] {b}); // one byte at a time
          }
          c.drain();
        });
        QmpClient qmp = QmpClient.connect(sock(), T)) {
      assertThat(qmp.execute("x", null, T).path("text").asText()).isEqualTo("\u00e9t\u00e9 \u00e9");
    }
  }
}
