package org.qemuft.controller.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.Callable;
import org.qemuft.controller.config.ConfigException;
import org.qemuft.controller.config.FtConfig;
import org.qemuft.controller.status.ControlServer;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
      "Show what the local controller is doing: role, epoch, peer, log bytes produced/shipped/acked/"
          + "replayed, lag, wire bytes, the output gate, flow-control stalls and icounts.",
      "",
      "Asks the controller over its control socket (mode 0600, so run as the controller's user)."
    },
    footer = {
      "",
      "Examples:",
      "  ftctl status --config /etc/qemu-ft/web1.yaml --role primary",
      "  ftctl status --socket /run/qemu-ft/web1/backup/control.sock --json",
      "",
      "Exit status: 0 answered, 2 no controller answered on the socket, 64 bad usage."
    })
final class StatusCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  static final class Target {
    @Option(names = "--socket", paramLabel = "PATH", description = "The controller's control socket.")
    Path socket;

    @ArgGroup(exclusive = false)
    FromConfig fromConfig;
  }

  static final class FromConfig {
    @Option(names = "--config", paramLabel = "FILE", required = true,
        description = "The pair's configuration file (finds the socket under runtime.dir).")
    Path config;

    @Option(names = "--role", paramLabel = "ROLE", required = true,
        description = "Which controller on this host: primary or backup.")
    String role;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  Target target;

  @Option(names = "--json", description = "Print the controller's answer as one JSON object.")
  boolean json;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Path socket = target.socket;
    if (socket == null) {
      try {
        FtConfig c = FtConfig.load(target.fromConfig.config);
        socket = c.controlSocket(Roles.parse(target.fromConfig.role));
      } catch (ConfigException e) {
        err.println("ftctl status: " + e.getMessage());
        return Ftctl.EXIT_USAGE;
      } catch (IllegalArgumentException e) {
        err.println("ftctl status: " + e.getMessage());
        return Ftctl.EXIT_USAGE;
      }
    }
    JsonNode answer;
    try {
      answer = ControlServer.ask(socket, "status");
    } catch (IOException e) {
      err.println("ftctl status: no controller answered on " + socket + ": " + e.getMessage()
          + " (is 'ftctl run' running for this pair and role?)");
      return Ftctl.EXIT_CONNECTION;
    }
    if (json) {
      out.println(answer.toString());
    } else {
      print(out, "", answer);
    }
    out.flush();
    return Ftctl.EXIT_OK;
  }

  private static void print(PrintWriter out, String indent, JsonNode node) {
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getValue().isObject()) {
        out.println(indent + e.getKey() + ":");
        print(out, indent + "  ", e.getValue());
      } else {
        out.printf("%s%-22s %s%n", indent, e.getKey(), e.getValue().isTextual() ? e.getValue().asText() : e.getValue());
      }
    }
  }

}
