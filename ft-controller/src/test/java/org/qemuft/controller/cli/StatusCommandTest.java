package org.qemuft.controller.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.status.ControlServer;
import picocli.CommandLine;

class StatusCommandTest {
  @TempDir Path dir;

  private final StringWriter out = new StringWriter();
  private final StringWriter err = new StringWriter();

  private int ftctl(String... args) {
    CommandLine cl = Ftctl.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    return cl.execute(args);
  }

  @Test
  void printsTheControllersAnswerAsJsonOrText() throws Exception {
    ObjectNode status = new ObjectMapper().createObjectNode().put("role", "primary").put("epoch", 3);
    status.putObject("gate").put("heldFrames", 2);
    Path sock = dir.resolve("control.sock");
    try (ControlServer server = ControlServer.start(sock, () -> status)) {
      assertThat(Files.getPosixFilePermissions(sock)).isEqualTo(PosixFilePermissions.fromString("rw-------"));
      assertThat(ftctl("status", "--socket", sock.toString(), "--json")).isZero();
      assertThat(new ObjectMapper().readTree(out.toString())).isEqualTo(status);
      out.getBuffer().setLength(0);
      assertThat(ftctl("status", "--socket", sock.toString())).isZero();
      assertThat(out.toString()).contains("role", "primary", "gate:", "heldFrames");
      assertThat(ControlServer.ask(sock, "reboot").get("error").asText()).contains("unknown request 'reboot'");
    }
    assertThat(sock).doesNotExist();
  }

  @Test
  void noControllerIsExitTwoAndBadRoleIsUsage() throws Exception {
    assertThat(ftctl("status", "--socket", dir.resolve("none.sock").toString())).isEqualTo(2);
    assertThat(err.toString()).contains("no controller answered on " + dir.resolve("none.sock"));
    assertThat(ftctl("status", "--config", dir.resolve("missing.yaml").toString(), "--role", "primary")).isEqualTo(64);
    assertThat(err.toString()).contains("missing.yaml: no such file");
    assertThat(ftctl("status")).isEqualTo(64);
  }
}
