package org.qemuft.controller.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The controller's control socket (mode 0600): a client sends one request line, the controller
 * answers with one JSON object and closes. Requests: {@code status}. Unknown requests get
 * {@code {"error": "..."}}.
 */
public final class ControlServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ControlServer.class);
  private static final int MAX_REQUEST = 256;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path path;
  private final ServerSocketChannel server;
  private final Supplier<JsonNode> status;
  private final Thread thread;
  private volatile boolean closed;

  private ControlServer(Path path, ServerSocketChannel server, Supplier<JsonNode> status) {
    this.path = path;
    this.server = server;
    this.status = status;
    this.thread = Thread.ofPlatform().daemon().name("control " + path.getFileName()).unstarted(this::run);
  }

  /** Listens on {@code path}, replacing a stale socket file; {@code status} builds each answer. */
  public static ControlServer start(Path path, Supplier<JsonNode> status) throws IOException {
    Files.createDirectories(path.getParent());
    Files.deleteIfExists(path);
    ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    try {
      server.bind(UnixDomainSocketAddress.of(path));
      Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
    } catch (IOException e) {
      server.close();
      throw new IOException("cannot open the control socket " + path + ": " + e.getMessage(), e);
    }
    ControlServer s = new ControlServer(path, server, status);
    s.thread.start();
    return s;
  }

  public Path path() {
    return path;
  }

  private void run() {
    while (!closed) {
      try (SocketChannel c = server.accept()) {
        String request = readLine(c);
        JsonNode answer = switch (request) {
          case "status" -> status.get();
          default -> JSON.createObjectNode().put("error", "unknown request '" + request + "' (known: status)");
        };
        c.write(ByteBuffer.wrap((JSON.writeValueAsString(answer) + "\n").getBytes(StandardCharsets.UTF_8)));
      } catch (IOException | RuntimeException e) {
        if (!closed) {
          LOG.warn("control socket {}: a request failed: {}", path, e.toString());
        }
      }
    }
  }

  private static String readLine(SocketChannel c) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(MAX_REQUEST);
    while (b.hasRemaining()) {
      if (c.read(b) < 0) {
        break;
      }
      for (int i = 0; i < b.position(); i++) {
        if (b.get(i) == '\n') {
          return new String(b.array(), 0, i, StandardCharsets.UTF_8).strip();
        }
      }
    }
    return new String(b.array(), 0, b.position(), StandardCharsets.UTF_8).strip();
  }

  @Override
  public void close() {
    closed = true;
    try {
      server.close();
      thread.join(5000);
      Files.deleteIfExists(path);
    } catch (IOException e) {
      LOG.debug("closing control socket {}: {}", path, e.toString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Asks the controller listening on {@code path}; returns its JSON answer. */
  public static JsonNode ask(Path path, String request) throws IOException {
    try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
      c.write(ByteBuffer.wrap((request + "\n").getBytes(StandardCharsets.UTF_8)));
      return JSON.readTree(java.nio.channels.Channels.newInputStream(c));
    }
  }
}
