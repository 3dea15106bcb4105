package org.qemuft.qmp;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.async.ByteArrayFeeder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ContainerNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.function.Consumer;

/**
 * Cuts a byte stream into JSON objects as they complete, however the bytes are chunked.
 *
 * <p>QMP frames nothing: QEMU writes one JSON object after another, each followed by CR LF, and
 * with {@code pretty=on} an object spans many lines. So messages are found by parsing, not by
 * lines: Jackson's non-blocking parser takes whatever arrived, reports a malformed byte as soon as
 * it sees it (a peer that sends garbage is caught at once, not at the next newline), and this class
 * builds the tree token by token. A message that grows past {@code maxMessageBytes} without
 * completing is refused, so an endless line cannot exhaust memory.
 *
 * <p>Not thread-safe: one reader thread feeds it.
 */
final class JsonMessageStream {
  /** How much of an offending message an error quotes. */
  static final int PREVIEW_BYTES = 200;
  private static final JsonFactory FACTORY = new JsonFactory();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  /** Why the stream cannot go on; the message says what was received. */
  static final class MalformedStreamException extends Exception {
    private static final long serialVersionUID = 1L;

    MalformedStreamException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final int maxMessageBytes;
  private final JsonParser parser;
  private final ByteArrayFeeder feeder;
  private final Deque<ContainerNode<?>> open = new ArrayDeque<>();
  private String fieldName;
  /** Stream offset where the message being received begins (just after the previous one). */
  private long messageStart;
  /** Bytes fed so far. */
  private long fed;
  /** The first bytes from {@link #messageStart}, for error messages. */
  private final byte[] head = new byte[PREVIEW_BYTES];
  private int headLength;

  JsonMessageStream(int maxMessageBytes) {
    this.maxMessageBytes = maxMessageBytes;
    try {
      this.parser = FACTORY.createNonBlockingByteArrayParser();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    this.feeder = (ByteArrayFeeder) parser.getNonBlockingInputFeeder();
  }

  /**
   * Parses {@code len} more bytes and hands each JSON object they complete to {@code sink}, in
   * order. The array is not kept after the call returns.
   *
   * @throws MalformedStreamException if the bytes are not a sequence of JSON objects, or a message
   *     is longer than allowed; the stream is unusable afterwards
   */
  void feed(byte[] buf, int off, int len, Consumer<ObjectNode> sink) throws MalformedStreamException {
    long chunkStart = fed;
    fed += len;
    try {
      feeder.feedInput(buf, off, off + len);
      JsonToken token;
      while ((token = parser.nextToken()) != JsonToken.NOT_AVAILABLE && token != null) {
        ObjectNode complete = take(token);
        if (complete != null) {
          messageStart = parser.currentLocation().getByteOffset();
          headLength = 0;
          sink.accept(complete);
        }
      }
    } catch (JsonProcessingException e) {
      keepHead(buf, off, len, chunkStart);
      throw new MalformedStreamException("not JSON (" + e.getOriginalMessage() + ") at byte "
          + parser.currentLocation().getByteOffset() + " of the stream; received: " + unfinishedPreview(), e);
    } catch (IOException e) {
      throw new UncheckedIOException("the JSON parser failed on bytes held in memory", e);
    }
    keepHead(buf, off, len, chunkStart);
    long pendingBytes = fed - messageStart;
    if (pendingBytes > maxMessageBytes) {
      throw new MalformedStreamException(pendingBytes + " bytes without the end of a JSON message; QMP"
          + " messages are far smaller (the limit is " + maxMessageBytes + " bytes). It starts with: "
          + unfinishedPreview(), null);
    }
  }

  /**
   * The beginning of what was received after the last complete message, quoted, with control
   * characters escaped and bounded to {@link #PREVIEW_BYTES} bytes; {@code ''} if only white space.
   */
  String unfinishedPreview() {
    return quote(head, headLength, fed - messageStart);
  }

  /** Whether something other than white space arrived after the last complete message. */
  boolean inMessage() {
    for (int i = 0; i < headLength; i++) {
      if (!isSpace(head[i])) {
        return true;
      }
    }
    return !open.isEmpty();
  }

  /** Bytes received after the last complete message. */
  long unfinishedBytes() {
    return fed - messageStart;
  }

  /** Quotes a message for an error: at most {@link #PREVIEW_BYTES} bytes, escaped, with its size. */
  static String quote(JsonNode message) {
    byte[] b = message.toString().getBytes(StandardCharsets.UTF_8);
    return quote(b, Math.min(b.length, PREVIEW_BYTES), b.length);
  }

  private static String quote(byte[] bytes, int length, long total) {
    int from = 0;
    int to = length;
    while (from < to && isSpace(bytes[from])) {
      from++;
    }
    while (to > from && isSpace(bytes[to - 1])) {
      to--;
    }
    // Byte by byte: what a broken peer sends need not be UTF-8, and the operator should see it.
    StringBuilder q = new StringBuilder("'");
    for (int i = from; i < to; i++) {
      int b = bytes[i] & 0xff;
      switch (b) {
        case '\n' -> q.append("\\n");
        case '\r' -> q.append("\\r");
        case '\t' -> q.append("\\t");
        default -> {
          if (b >= 0x20 && b < 0x7f) {
            q.append((char) b);
          } else {
            q.append(String.format("\\x%02x", b));
          }
        }
      }
    }
    q.append('\'');
    if (total > length) {
      q.append(" ... (").append(total).append(" bytes in all)");
    }
    return q.toString();
  }

  private static boolean isSpace(byte b) {
    return b == ' ' || b == '\n' || b == '\r' || b == '\t';
  }

  private void keepHead(byte[] buf, int off, int len, long chunkStart) {
    int from = (int) Math.max(0, messageStart - chunkStart);
    int n = Math.min(len - from, head.length - headLength);
    if (n > 0) {
      System.arraycopy(buf, off + from, head, headLength, n);
      headLength += n;
    }
  }

  /** Adds a token to the tree being built; returns the message when its last brace arrives. */
  private ObjectNode take(JsonToken token) throws IOException {
    switch (token) {
      case START_OBJECT -> {
        ObjectNode n = NODES.objectNode();
        attach(n, token);
        open.push(n);
      }
      case START_ARRAY -> {
        ArrayNode n = NODES.arrayNode();
        attach(n, token);
        open.push(n);
      }
      case END_OBJECT, END_ARRAY -> {
        ContainerNode<?> done = open.pop();
        if (open.isEmpty()) {
          return (ObjectNode) done;
        }
      }
      case FIELD_NAME -> fieldName = parser.currentName();
      case VALUE_STRING -> attach(NODES.textNode(parser.getText()), token);
      case VALUE_NUMBER_INT -> attach(switch (parser.getNumberType()) {
        case INT -> NODES.numberNode(parser.getIntValue());
        case LONG -> NODES.numberNode(parser.getLongValue());
        default -> NODES.numberNode(parser.getBigIntegerValue());
      }, token);
      case VALUE_NUMBER_FLOAT -> attach(NODES.numberNode(parser.getDoubleValue()), token);
      case VALUE_TRUE -> attach(NODES.booleanNode(true), token);
      case VALUE_FALSE -> attach(NODES.booleanNode(false), token);
      case VALUE_NULL -> attach(NODES.nullNode(), token);
      default -> throw new IllegalStateException("unexpected JSON token " + token);
    }
    return null;
  }

  private void attach(JsonNode node, JsonToken token) throws IOException {
    ContainerNode<?> parent = open.peek();
    if (parent == null) {
      if (token != JsonToken.START_OBJECT) {
        throw new com.fasterxml.jackson.core.JsonParseException(parser,
            "a QMP message must be a JSON object, not " + describe(token));
      }
    } else if (parent instanceof ObjectNode o) {
      o.set(fieldName, node);
    } else {
      ((ArrayNode) parent).add(node);
    }
  }

  private static String describe(JsonToken token) {
    return switch (token) {
      case START_ARRAY -> "an array";
      case VALUE_STRING -> "a string";
      case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
      default -> "'" + token.asString() + "'";
    };
  }
}
