package org.qemuft.qmp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class JsonMessageStreamTest {
  private static final String TWO = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22}}, \"capabilities\": [\"oob\"]}}\r\n"
      + "{\"return\": {\"status\": \"running\", \"x\": [1, 2.5, -3, 18446744073709551616, true, false, null,"
      + " \"}{\\\"\\u00e9\"]}, \"id\": 7}\r\n";

  private static List<ObjectNode> parse(JsonMessageStream s, byte[] b, int chunk) throws Exception {
    List<ObjectNode> out = new ArrayList<>();
    for (int i = 0; i < b.length; i += chunk) {
      s.feed(b, i, Math.min(chunk, b.length - i), out::add);
    }
    return out;
  }

  @Test
  void findsEveryMessageHoweverTheBytesAreChunked() throws Exception {
    byte[] b = TWO.getBytes(StandardCharsets.UTF_8);
    List<ObjectNode> whole = parse(new JsonMessageStream(1 << 20), b, b.length);
    assertThat(whole).hasSize(2);
    assertThat(whole.get(1).path("return").path("x").get(3).bigIntegerValue().toString()).isEqualTo("18446744073709551616");
    assertThat(whole.get(1).path("return").path("x").get(7).asText()).isEqualTo("}{\"\u00e9");
    for (int chunk = 1; chunk < 40; chunk++) {
      assertThat(parse(new JsonMessageStream(1 << 20), b, chunk)).as("chunks of %d bytes", chunk).isEqualTo(whole);
    }
  }

  @Test
  void aTopLevelValueOtherThanAnObjectIsRefused() {
    assertThatThrownBy(() -> parse(new JsonMessageStream(1 << 20), "[1, 2]\n".getBytes(StandardCharsets.UTF_8), 100))
        .isInstanceOf(JsonMessageStream.MalformedStreamException.class)
        .hasMessageContaining("must be a JSON object, not an array")
        .hasMessageContaining("'[1, 2]'");
    assertThatThrownBy(() -> parse(new JsonMessageStream(1 << 20), "{}\r\n\"text\"\n".getBytes(StandardCharsets.UTF_8), 100))
        .isInstanceOf(JsonMessageStream.MalformedStreamException.class)
        .hasMessageContaining("not a string")
        .hasMessageContaining("'\"text\"'");
  }

  @Test
  void aMessageOverTheLimitIsRefusedWithABoundedQuote() {
    String big = "{\"return\": \"" + "x".repeat(5000);
    assertThatThrownBy(() -> parse(new JsonMessageStream(1000), big.getBytes(StandardCharsets.UTF_8), 512))
        .isInstanceOf(JsonMessageStream.MalformedStreamException.class)
        .hasMessageContaining("without the end of a JSON message")
        .hasMessageContaining("the limit is 1000 bytes")
        .hasMessageContaining("bytes in all)")
        .satisfies(e -> assertThat(e.getMessage().length()).isLessThan(400));
  }

  @Test
  void endlessWhiteSpaceCountsAgainstTheLimit() {
    assertThatThrownBy(() -> parse(new JsonMessageStream(1000), " ".repeat(3000).getBytes(StandardCharsets.UTF_8), 512))
        .isInstanceOf(JsonMessageStream.MalformedStreamException.class)
        .hasMessageContaining("without the end of a JSON message");
  }

  @Test
  void deepNestingIsRefusedWithoutAStackOverflow() {
    String deep = "{\"a\": " + "[".repeat(100_000);
    assertThatThrownBy(() -> parse(new JsonMessageStream(1 << 20), deep.getBytes(StandardCharsets.UTF_8), 4096))
        .isInstanceOf(JsonMessageStream.MalformedStreamException.class)
        .hasMessageContaining("not JSON")
        .hasMessageContaining("nesting depth");
  }

  @Test
  void knowsWhetherSomethingIsHalfReceived() throws Exception {
    JsonMessageStream s = new JsonMessageStream(1 << 20);
    byte[] b = "{\"return\": {}}\r\n  ".getBytes(StandardCharsets.UTF_8);
    assertThat(parse(s, b, b.length)).hasSize(1);
    assertThat(s.inMessage()).isFalse();
    byte[] half = "{\"ret".getBytes(StandardCharsets.UTF_8);
    s.feed(half, 0, half.length, m -> { });
    assertThat(s.inMessage()).isTrue();
    assertThat(s.unfinishedPreview()).isEqualTo("'{\"ret'");
  }
}
