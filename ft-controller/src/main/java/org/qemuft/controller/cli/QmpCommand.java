package org.qemuft.controller.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.QmpClient;
import org.qemuft.qmp.QmpErrorException;
import org.qemuft.qmp.QmpException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code ftctl qmp}: runs one QMP command on a QEMU and prints its answer as JSON. */
@Command(
    name = "qmp",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    usageHelpAutoWidth = true,
    description = {
      "Runs one QMP command on the QEMU listening on the QMP socket PATH and prints",
      "QEMU's answer (the \"return\" value) as one line of JSON on stdout.",
      "",
      "A QEMU that qemu-ft starts has its QMP socket at RUNDIR/qmp.sock, mode 0600:",
      "run as the user that runs QEMU. QEMU serves one QMP client at a time: while",
      "another client (a qemu-ft controller) holds the socket, this waits and fails",
      "after --timeout.",
      "",
      "Stopping, continuing or quitting a protected VM behind its controller's back",
      "breaks the pair's lockstep: use it on a VM outside a pair, or to inspect.",
      "",
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:QEMU ran the command; its answer is on stdout",
      "1:QEMU refused the command: stderr names its error class (e.g."
          + " CommandNotFound, GenericError) and description",
      "2:no answer: nothing listens on PATH, the connection broke, QEMU did not"
          + " reply within --timeout, or the peer does not speak QMP",
      "64:bad usage (e.g. JSON-ARGS is not a JSON object)"
    },
    footer = {
      "",
      "Examples (S is the socket, e.g. /tmp/vm1/qmp.sock):",
      "  ftctl qmp --socket S query-status",
      "  ftctl qmp --socket S query-replay",
      "  ftctl qmp --socket S stop",
      "  ftctl qmp --socket S replay-break '{\"icount\": 150000000}'",
      "  ftctl qmp --socket S --raw human-monitor-command \\",
      "      '{\"command-line\": \"info snapshots\"}'",
      "  ftctl qmp --socket S query-commands | jq -r '.[].name'",
      "",
      "Which commands exist and what they take: QEMU's QMP reference",
      "(https://qemu-project.gitlab.io/qemu/interop/qemu-qmp-ref.html) or",
      "'ftctl qmp --socket S query-qmp-schema'."
    })
final class QmpCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Option(names = "--socket", paramLabel = "PATH", required = true,
      description = "QEMU's QMP socket (-qmp unix:PATH,server=on).")
  Path socket;

  @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "30",
      description = "How long to wait to connect, and then for QEMU's reply (default: ${DEFAULT-VALUE}).")
  double timeoutSeconds;

  @Option(names = "--pretty", description = "Print the answer indented over several lines.")
  boolean pretty;

  @Option(names = "--raw",
      description = "If the answer is a JSON string (as human-monitor-command's is), print the text itself.")
  boolean raw;

  @Parameters(index = "0", paramLabel = "COMMAND", description = "The QMP command, e.g. query-status.")
  String command;

  @Parameters(index = "1", arity = "0..1", paramLabel = "JSON-ARGS",
      description = "The command's arguments as one JSON object, e.g. '{\"icount\": 1000}'.")
  String jsonArgs;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter err = spec.commandLine().getErr();
    try {
      return run(spec.commandLine().getOut(), err);
    } finally {
      err.flush();
    }
  }

  private int run(PrintWriter out, PrintWriter err) {
    if (!(timeoutSeconds > 0) || timeoutSeconds > 86_400) {
      err.println("ftctl qmp: --timeout " + timeoutSeconds + " is not a number of seconds in (0, 86400]");
      return Ftctl.EXIT_USAGE;
    }
    if (command.isBlank()) {
      err.println("ftctl qmp: COMMAND is empty (e.g. query-status)");
      return Ftctl.EXIT_USAGE;
    }
    JsonNode args = null;
    if (jsonArgs != null) {
      try {
        args = JSON.reader().with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).readTree(jsonArgs);
      } catch (JsonProcessingException e) {
        err.println("ftctl qmp: JSON-ARGS is not valid JSON (" + e.getOriginalMessage() + "): " + jsonArgs);
        return Ftctl.EXIT_USAGE;
      }
      if (args == null || !args.isObject()) {
        err.println("ftctl qmp: JSON-ARGS must be one JSON object such as '{\"icount\": 1000}', not: " + jsonArgs);
        return Ftctl.EXIT_USAGE;
      }
    }
    Duration timeout = Duration.ofNanos((long) (timeoutSeconds * 1e9));
    JsonNode answer;
    try (QmpClient client = QmpClient.connect(socket, timeout)) {
      if (command.equals("quit") && args == null) {
        new QemuMonitor(client).quit(); // QEMU may close the socket before its reply arrives
        answer = JSON.createObjectNode();
      } else {
        answer = client.execute(command, args, timeout);
      }
    } catch (QmpErrorException e) {
      err.println("ftctl qmp: " + e.getMessage()
          + (e.errorClass().equals("CommandNotFound") ? " ('ftctl qmp --socket " + socket
              + " query-commands' lists the commands this QEMU knows)" : ""));
      return Ftctl.EXIT_FAILED;
    } catch (QmpException e) {
      err.println("ftctl qmp: " + e.getMessage());
      return Ftctl.EXIT_CONNECTION;
    }
    try {
      if (raw && answer.isTextual()) {
        out.print(answer.asText());
      } else {
        out.println(pretty ? JSON.writerWithDefaultPrettyPrinter().writeValueAsString(answer) : answer.toString());
      }
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot print a JSON tree", e);
    }
    out.flush();
    return Ftctl.EXIT_OK;
  }
}
