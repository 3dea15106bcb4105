package org.qemuft.qmp;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A connection to one QEMU's QMP monitor on a Unix socket: {@link #connect}, {@link #execute},
 * {@link #onEvent}, {@link #close}. Commands and replies are JSON trees; {@link QemuMonitor} is
 * the typed layer on top.
 *
 * <p>Thread-safe. Several threads may execute commands at once: each request carries a unique
 * {@code id} and its reply is matched by it. (QEMU without the {@code oob} capability, which this
 * client does not enable, still runs the commands of one connection one after the other.)
 *
 * <p>Three threads serve a connection, each named after the socket: {@code qmp-reader} parses what
 * QEMU sends, {@code qmp-writer} sends requests (so a QEMU that stops reading cannot block a
 * caller past its timeout), {@code qmp-events} runs event listeners. {@link #close()} ends all
 * three.
 *
 * <p>Failures are one of three exception types under {@link QmpException}; see there. A protocol
 * violation or a broken connection ends the connection: every waiting call fails at once, and
 * later calls fail with {@link QmpConnectionException}. A call that times out does not end it:
 * QEMU may still be busy with a long command, and its late reply is dropped when it comes.
 */
public final class QmpClient implements AutoCloseable {
  /** The timeout of {@link #execute(String, JsonNode)}. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
  /** The longest message accepted from QEMU. Its biggest replies (query-qmp-schema) are ~200 KiB. */
  static final int MAX_MESSAGE_BYTES = 8 << 20;
  /** Events waiting for the listeners; beyond this, new events are dropped (and logged). */
  static final int EVENT_QUEUE_CAPACITY = 10_000;
  static final String READER_THREAD = "qmp-reader ";
  static final String WRITER_THREAD = "qmp-writer ";
  static final String EVENTS_THREAD = "qmp-events ";

  private static final Logger LOG = LoggerFactory.getLogger(QmpClient.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int READ_BUFFER = 64 << 10;
  private static final Duration JOIN = Duration.ofSeconds(5);
  private static final String NOT_QMP_HINT =
      ". Is this QEMU's QMP socket (-qmp), not a human monitor (-monitor) or another service?";

  private record Call(String command, CompletableFuture<ObjectNode> reply) {}

  private record Listener(String name, Consumer<QmpEvent> action) {}

  private final Path socket;
  private final SocketChannel channel;
  private final JsonMessageStream stream;
  private final Map<Long, Call> pending = new ConcurrentHashMap<>();
  private final AtomicLong lastId = new AtomicLong();
  private final BlockingQueue<byte[]> outbox = new LinkedBlockingQueue<>();
  private final BlockingQueue<QmpEvent> events = new ArrayBlockingQueue<>(EVENT_QUEUE_CAPACITY);
  private final List<Listener> listeners = new CopyOnWriteArrayList<>();
  private final AtomicLong droppedEvents = new AtomicLong();
  private final CompletableFuture<QmpGreeting> greeting = new CompletableFuture<>();
  /** Why the connection ended; null while it is open. Set once. */
  private final AtomicReference<QmpException> ended = new AtomicReference<>();
  private volatile boolean closedHere;
  private final Thread reader;
  private final Thread writer;
  private final Thread dispatcher;

  private QmpClient(Path socket, SocketChannel channel, int maxMessageBytes) {
    this.socket = socket;
    this.channel = channel;
    this.stream = new JsonMessageStream(maxMessageBytes);
    this.reader = Thread.ofPlatform().daemon().name(READER_THREAD + socket).unstarted(this::readLoop);
    this.writer = Thread.ofPlatform().daemon().name(WRITER_THREAD + socket).unstarted(this::writeLoop);
    this.dispatcher = Thread.ofPlatform().daemon().name(EVENTS_THREAD + socket).unstarted(this::dispatchLoop);
  }

  /**
   * Connects to the QMP socket of a QEMU ({@code -qmp unix:PATH,server=on}), reads its greeting
   * and negotiates capabilities (none are enabled), all within {@code timeout}.
   *
   * <p>QEMU serves one QMP client per socket at a time: while another client is connected, the
   * connection is made but no greeting comes, and this fails after {@code timeout}.
   *
   * @throws QmpConnectionException nothing listens on the socket, or no greeting in time
   * @throws QmpProtocolException what answered is not QMP
   * @throws QmpErrorException QEMU refused {@code qmp_capabilities}
   */
  public static QmpClient connect(Path unixSocket, Duration timeout) throws QmpException {
    return connect(unixSocket, timeout, MAX_MESSAGE_BYTES);
  }

  static QmpClient connect(Path unixSocket, Duration timeout, int maxMessageBytes) throws QmpException {
    Objects.requireNonNull(unixSocket, "unixSocket");
    requirePositive(timeout);
    long deadline = System.nanoTime() + timeout.toNanos();
    SocketChannel channel = open(unixSocket, timeout);
    QmpClient client = new QmpClient(unixSocket, channel, maxMessageBytes);
    client.reader.start();
    client.writer.start();
    client.dispatcher.start();
    try {
      QmpGreeting g = client.awaitGreeting(timeout, deadline);
      client.execute("qmp_capabilities", null, remaining(deadline));
      LOG.debug("connected to QEMU {} on {}", g.version(), unixSocket);
      return client;
    } catch (QmpException | RuntimeException e) {
      client.close();
      throw e;
    }
  }

  /** The socket this client is connected to. */
  public Path socket() {
    return socket;
  }

  /** QEMU's greeting: its version and the capabilities it offered. */
  public QmpGreeting greeting() {
    return greeting.getNow(null);
  }

  /** Whether the connection is still open (neither closed here nor ended by the peer). */
  public boolean isOpen() {
    return ended.get() == null;
  }

  /** {@link #execute(String, JsonNode, Duration)} with {@link #DEFAULT_TIMEOUT}. */
  public JsonNode execute(String command, JsonNode argsOrNull) throws QmpException {
    return execute(command, argsOrNull, DEFAULT_TIMEOUT);
  }

  /**
   * Runs a QMP command and returns its {@code return} value (often an empty object).
   *
   * @param command the command, e.g. {@code query-status}
   * @param argsOrNull its arguments, a JSON object; null for none
   * @param timeout how long to wait for the reply
   * @throws QmpErrorException QEMU answered with an error
   * @throws QmpConnectionException the connection is closed or broke, or no reply within {@code
   *     timeout} (the connection then stays open), or the calling thread was interrupted (its
   *     interrupt status is set again)
   * @throws QmpProtocolException the peer broke the protocol while the call waited
   * @throws IllegalArgumentException the command is blank, the arguments are not an object, or the
   *     timeout is not positive
   */
  public JsonNode execute(String command, JsonNode argsOrNull, Duration timeout) throws QmpException {
    Objects.requireNonNull(command, "command");
    if (command.isBlank()) {
      throw new IllegalArgumentException("the QMP command name is empty");
    }
    if (argsOrNull != null && !argsOrNull.isObject()) {
      throw new IllegalArgumentException("the arguments of QMP command '" + command
          + "' must be a JSON object, not " + argsOrNull.getNodeType().name().toLowerCase() + " " + argsOrNull);
    }
    requirePositive(timeout);
    long id = lastId.incrementAndGet();
    Call call = new Call(command, new CompletableFuture<>());
    pending.put(id, call);
    // Whoever ends the connection fails the calls it finds in pending; check after adding ours.
    QmpException end = ended.get();
    if (end != null && pending.remove(id) != null) {
      throw closedBefore(command, end);
    }
    ObjectNode request = JSON.createObjectNode().put("execute", command);
    if (argsOrNull != null) {
      request.set("arguments", argsOrNull);
    }
    request.put("id", id);
    try {
      byte[] json = JSON.writeValueAsBytes(request);
      byte[] line = new byte[json.length + 1];
      System.arraycopy(json, 0, line, 0, json.length);
      line[json.length] = '\n';
      LOG.trace("{} -> {}", socket, request);
      outbox.add(line);
    } catch (JsonProcessingException e) {
      pending.remove(id);
      throw new IllegalArgumentException("the arguments of '" + command + "' cannot be written as JSON", e);
    }
    ObjectNode reply;
    try {
      reply = call.reply().get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      if (pending.remove(id) != null || !call.reply().isDone()) {
        throw new QmpConnectionException("QEMU on " + socket + " did not reply to '" + command
            + "' within " + timeout.toMillis() + " ms. The connection stays open; QEMU may be"
            + " stopped (SIGSTOP), overloaded, or still busy with this or an earlier command.");
      }
      reply = call.reply().getNow(null); // the reply and the timeout crossed
    } catch (InterruptedException e) {
      pending.remove(id);
      Thread.currentThread().interrupt();
      throw new QmpConnectionException("interrupted while waiting for QEMU on " + socket
          + " to answer '" + command + "'", e);
    } catch (ExecutionException e) {
      throw sameKindHere(e.getCause());
    }
    JsonNode error = reply.get("error");
    if (error != null) {
      throw new QmpErrorException(command, socket, error.path("class").asText(), error.path("desc").asText());
    }
    return reply.get("return");
  }

  /**
   * Calls {@code listener} with every event named {@code nameOrNullForAll} (every event if null)
   * that arrives from now on, until the subscription is closed.
   *
   * <p>Listeners run one at a time, in the order events arrived, on this client's {@code
   * qmp-events} thread, never on the thread that reads replies: a slow listener cannot delay a
   * reply. It delays the other listeners, though, and once {@value #EVENT_QUEUE_CAPACITY} events
   * wait, new ones are dropped (and logged): keep listeners short, hand long work to another
   * thread. A listener that throws is logged and stays subscribed. A listener may call {@link
   * #execute} and {@link #close}.
   *
   * <p>When QEMU ends the connection, the events it sent before are still delivered.
   */
  public Subscription onEvent(String nameOrNullForAll, Consumer<QmpEvent> listener) {
    Objects.requireNonNull(listener, "listener");
    Listener l = new Listener(nameOrNullForAll, listener);
    listeners.add(l);
    AtomicBoolean removed = new AtomicBoolean();
    return () -> {
      if (removed.compareAndSet(false, true)) {
        listeners.remove(l);
      }
    };
  }

  /** Events dropped because the listeners did not keep up (see {@link #onEvent}). */
  public long droppedEvents() {
    return droppedEvents.get();
  }

  /**
   * Closes the connection. Calls still waiting fail with {@link QmpConnectionException}; events not
   * yet delivered are discarded. Returns when the client's threads have ended (a listener that
   * does not return within 5 s is left running and logged). Idempotent; QEMU keeps running.
   */
  @Override
  public void close() {
    closedHere = true;
    end(new QmpConnectionException("the QMP client for " + socket + " was closed"));
    boolean fromListener = Thread.currentThread() == dispatcher;
    if (!fromListener) {
      dispatcher.interrupt(); // the dispatcher itself ends when its listener returns
    }
    join(reader);
    join(writer);
    if (!fromListener) {
      join(dispatcher);
    }
  }

  @Override
  public String toString() {
    return "QmpClient[" + socket + (isOpen() ? "" : ", closed") + "]";
  }

  // ---- connecting

  private static SocketChannel open(Path path, Duration timeout) throws QmpConnectionException {
    SocketChannel channel;
    try {
      channel = SocketChannel.open(StandardProtocolFamily.UNIX);
    } catch (IOException e) {
      throw new QmpConnectionException("cannot create a Unix socket to connect to " + path + ": " + e, e);
    }
    // A blocked connect() (the listener's backlog is full: QEMU accepts one QMP client at a time
    // and listens with a backlog of 1) ends when another thread closes the channel.
    AtomicBoolean timedOut = new AtomicBoolean();
    Thread watchdog = Thread.ofPlatform().daemon().name("qmp-connect " + path).start(() -> {
      try {
        Thread.sleep(timeout);
        timedOut.set(true);
        channel.close();
      } catch (InterruptedException | IOException e) {
        // connected in time, or closing failed: nothing to do
      }
    });
    try {
      channel.connect(UnixDomainSocketAddress.of(path));
      return channel;
    } catch (IOException | RuntimeException e) {
      closeQuietly(channel);
      if (timedOut.get()) {
        throw new QmpConnectionException("cannot connect to the QMP socket " + path + " within "
            + timeout.toMillis() + " ms: the listener does not accept (QEMU serves one QMP client"
            + " at a time; other clients are connected or waiting)", e);
      }
      throw new QmpConnectionException("cannot connect to the QMP socket " + path + ": "
          + (e.getMessage() == null ? e.toString() : e.getMessage()) + hint(path, e), e);
    } finally {
      watchdog.interrupt();
      joinQuietly(watchdog);
    }
  }

  private static String hint(Path path, Exception e) {
    String m = String.valueOf(e.getMessage()).toLowerCase();
    if (!Files.exists(path) || m.contains("no such file")) {
      return " (no such socket: is QEMU running with -qmp unix:" + path + ",server=on? A QEMU that"
          + " is still starting creates it after a moment)";
    }
    if (m.contains("refused")) {
      return " (the socket file exists but nothing listens: the QEMU that created it has exited)";
    }
    if (m.contains("permission") || m.contains("denied")) {
      return " (qemu-ft creates QMP sockets with mode 0600: run as the user that runs QEMU)";
    }
    return "";
  }

  private QmpGreeting awaitGreeting(Duration timeout, long deadline) throws QmpException {
    try {
      return greeting.get(remaining(deadline).toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      throw new QmpConnectionException("connected to " + socket + " but QEMU sent no QMP greeting"
          + " within " + timeout.toMillis() + " ms. QEMU serves one QMP client at a time: is another"
          + " client connected (a qemu-ft controller, another ftctl)? Or is QEMU stopped (SIGSTOP)"
          + " or is this not a QMP socket?");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new QmpConnectionException("interrupted while waiting for the QMP greeting on " + socket, e);
    } catch (ExecutionException e) {
      throw sameKindHere(e.getCause());
    }
  }

  // ---- the reader

  private void readLoop() {
    ByteBuffer buf = ByteBuffer.allocate(READ_BUFFER);
    try {
      while (true) {
        buf.clear();
        int n = channel.read(buf);
        if (n < 0) {
          peerClosed();
          return;
        }
        stream.feed(buf.array(), 0, n, this::onMessage);
      }
    } catch (JsonMessageStream.MalformedStreamException e) {
      end(new QmpProtocolException("the peer on " + socket + " broke the QMP protocol: it sent "
          + e.getMessage() + (greeting.isDone() ? "" : NOT_QMP_HINT), e));
    } catch (ProtocolViolation e) {
      end(new QmpProtocolException("the peer on " + socket + " broke the QMP protocol: it sent "
          + e.getMessage()));
    } catch (IOException e) {
      if (ended.get() == null) {
        end(new QmpConnectionException("the QMP connection " + socket + " broke: "
            + (e.getMessage() == null ? e.toString() : e.getMessage()) + " (did QEMU exit, or was it killed?)", e));
      }
    } catch (RuntimeException | Error e) {
      LOG.error("QMP reader for {} failed", socket, e);
      end(new QmpConnectionException("the QMP reader for " + socket + " failed: " + e, e));
      throw e;
    }
  }

  private void peerClosed() {
    String when;
    if (stream.inMessage()) {
      when = " in the middle of a message, after " + stream.unfinishedBytes() + " bytes of it: "
          + stream.unfinishedPreview();
    } else if (!greeting.isDone()) {
      when = " before sending the QMP greeting";
    } else {
      when = "";
    }
    end(new QmpConnectionException("QEMU closed the QMP connection " + socket + when
        + " (did QEMU exit, or was it killed?)"));
  }

  /** A message the reader cannot accept; ends the connection as a protocol violation. */
  private static final class ProtocolViolation extends RuntimeException {
    private static final long serialVersionUID = 1L;

    ProtocolViolation(String message) {
      super(message, null, false, false);
    }
  }

  private void onMessage(ObjectNode msg) {
    LOG.trace("{} <- {}", socket, msg);
    if (!greeting.isDone()) {
      greeting.complete(parseGreeting(msg));
      return;
    }
    if (msg.has("event")) {
      onEventMessage(msg);
      return;
    }
    if (!msg.has("return") && !msg.has("error")) {
      throw new ProtocolViolation((msg.has("QMP") ? "a second greeting: " : "a message that is neither"
          + " a reply nor an event: ") + JsonMessageStream.quote(msg));
    }
    JsonNode error = msg.get("error");
    if (error != null && !(error.isObject() && error.path("class").isTextual() && error.path("desc").isTextual())) {
      throw new ProtocolViolation("an error reply without a class and desc: " + JsonMessageStream.quote(msg));
    }
    JsonNode id = msg.get("id");
    if (id == null) {
      throw new ProtocolViolation(error != null
          ? "an error without an id, which means it could not parse a request: "
              + error.path("class").asText() + ": " + error.path("desc").asText()
          : "a reply without an id: " + JsonMessageStream.quote(msg));
    }
    if (id.canConvertToExactIntegral() && id.canConvertToLong()) {
      Call call = pending.remove(id.asLong());
      if (call != null) {
        call.reply().complete(msg);
        return;
      }
      if (id.asLong() > 0 && id.asLong() <= lastId.get()) {
        LOG.info("QEMU on {} answered request {} after its caller stopped waiting (timeout);"
            + " the reply is dropped: {}", socket, id, JsonMessageStream.quote(msg));
        return;
      }
    }
    throw new ProtocolViolation("a reply to request id " + id + ", which this client never sent: "
        + JsonMessageStream.quote(msg));
  }

  private static QmpGreeting parseGreeting(ObjectNode msg) {
    JsonNode qmp = msg.get("QMP");
    JsonNode v = qmp == null ? null : qmp.path("version").path("qemu");
    if (qmp == null || !qmp.isObject() || !v.path("major").canConvertToInt()) {
      throw new ProtocolViolation("no QMP greeting ({\"QMP\": {\"version\": ...}}) as its first message"
          + " but " + JsonMessageStream.quote(msg) + NOT_QMP_HINT);
    }
    QemuVersion version = new QemuVersion(v.path("major").asInt(), v.path("minor").asInt(),
        v.path("micro").asInt(), qmp.path("version").path("package").asText("").strip());
    List<String> caps = new ArrayList<>();
    qmp.path("capabilities").forEach(c -> caps.add(c.asText()));
    return new QmpGreeting(version, caps);
  }

  private void onEventMessage(ObjectNode msg) {
    JsonNode name = msg.get("event");
    if (!name.isTextual()) {
      throw new ProtocolViolation("an event whose name is not a string: " + JsonMessageStream.quote(msg));
    }
    JsonNode data = msg.get("data");
    JsonNode ts = msg.path("timestamp");
    Instant when = ts.path("seconds").canConvertToLong()
        ? Instant.ofEpochSecond(ts.path("seconds").asLong(), Math.max(0, ts.path("microseconds").asLong()) * 1000)
        : Instant.now();
    QmpEvent event = new QmpEvent(name.asText(), data == null ? JSON.createObjectNode() : data, when);
    if (!events.offer(event)) {
      long dropped = droppedEvents.incrementAndGet();
      if (dropped == 1 || dropped % 1000 == 0) {
        LOG.warn("QMP events from {}: {} events wait for the listeners, which do not keep up (one is"
            + " slow or blocked); dropped {} ({} dropped so far)", socket, EVENT_QUEUE_CAPACITY,
            event.name(), dropped);
      }
    }
  }

  // ---- the writer

  private void writeLoop() {
    try {
      while (true) {
        ByteBuffer b = ByteBuffer.wrap(outbox.take());
        while (b.hasRemaining()) {
          channel.write(b);
        }
      }
    } catch (InterruptedException e) {
      // the connection ended
    } catch (IOException e) {
      if (ended.get() == null) {
        end(new QmpConnectionException("writing to the QMP socket " + socket + " failed: " + e, e));
      }
    }
  }

  // ---- the event dispatcher

  private void dispatchLoop() {
    try {
      while (!closedHere) {
        QmpEvent event = events.poll(250, TimeUnit.MILLISECONDS);
        if (event == null) {
          if (ended.get() != null) {
            return; // the peer ended the connection and everything it sent is delivered
          }
          continue;
        }
        for (Listener l : listeners) {
          if (closedHere) {
            return;
          }
          if (l.name() == null || l.name().equals(event.name())) {
            deliver(l, event);
          }
        }
      }
    } catch (InterruptedException e) {
      // closed
    }
  }

  private void deliver(Listener l, QmpEvent event) {
    try {
      l.action().accept(event);
    } catch (VirtualMachineError e) {
      throw e;
    } catch (Throwable t) {
      LOG.warn("a listener for QMP event {} from {} threw; it stays subscribed", event.name(), socket, t);
    }
  }

  // ---- ending

  /** Ends the connection for {@code why} (the first reason wins) and fails every waiting call. */
  private void end(QmpException why) {
    if (!ended.compareAndSet(null, why)) {
      return;
    }
    if (!closedHere) {
      LOG.debug("QMP connection {} ended: {}", socket, why.getMessage());
    }
    closeQuietly(channel);
    writer.interrupt();
    greeting.completeExceptionally(why);
    for (Long id : List.copyOf(pending.keySet())) {
      Call call = pending.remove(id);
      if (call != null) {
        call.reply().completeExceptionally(forCall(call.command(), why));
      }
    }
  }

  /** The connection's end, told to one waiting call. */
  private QmpException forCall(String command, QmpException why) {
    String msg = switch (why) {
      case QmpProtocolException p -> "no reply to '" + command + "': " + p.getMessage();
      default -> closedHere
          ? "the QMP client for " + socket + " was closed while '" + command + "' waited for its reply"
          : "no reply to '" + command + "': " + why.getMessage();
    };
    return why instanceof QmpProtocolException
        ? new QmpProtocolException(msg, why)
        : new QmpConnectionException(msg, why);
  }

  private QmpConnectionException closedBefore(String command, QmpException end) {
    return new QmpConnectionException("cannot run '" + command + "': the QMP connection to " + socket
        + " is closed (" + end.getMessage() + ")", end);
  }

  /** The same failure, thrown again from the caller's thread (the cause holds the reader's trace). */
  private static QmpException sameKindHere(Throwable t) {
    return switch (t) {
      case QmpProtocolException p -> new QmpProtocolException(p.getMessage(), p);
      case QmpConnectionException c -> new QmpConnectionException(c.getMessage(), c);
      case ProtocolViolation v -> new QmpProtocolException(v.getMessage(), v);
      default -> new QmpConnectionException("QMP failed: " + t, t);
    };
  }

  private static void requirePositive(Duration timeout) {
    Objects.requireNonNull(timeout, "timeout");
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("the QMP timeout must be positive, not " + timeout);
    }
  }

  private static Duration remaining(long deadline) {
    return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
  }

  private static void closeQuietly(SocketChannel channel) {
    try {
      channel.close();
    } catch (IOException e) {
      LOG.debug("closing a QMP socket: {}", e.toString());
    }
  }

  private static void joinQuietly(Thread t) {
    boolean interrupted = false;
    while (true) {
      try {
        t.join();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  private void join(Thread t) {
    try {
      t.join(JOIN);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (t.isAlive()) {
      LOG.warn("QMP client for {}: thread '{}' did not end within {} ms after close{}", socket,
          t.getName(), JOIN.toMillis(), t == dispatcher ? " (an event listener does not return)" : "");
    }
  }
}
