package org.qemuft.controller.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qemuft.controller.config.ConfigException;
import org.qemuft.controller.config.FtConfig;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.controller.pair.PairController;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code ftctl run}: one host's controller of a protected pair, in the foreground. */
@Command(
    name = "run",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Run this host's controller of a protected pair until the guest powers off or the",
      "controller is stopped (SIGTERM or Ctrl-C stop its QEMU and remove what it created).",
      "",
      "primary  starts the guest in QEMU record mode, ships its replay log to the backup's",
      "         controller and holds every packet the guest sends until the backup has",
      "         acknowledged the log behind it; packets from the uplink (pair's TAP) go to",
      "         the guest.",
      "backup   listens for the primary, replays its log in lockstep in a second QEMU;",
      "         that guest's packets go nowhere.",
      "",
      "Start the backup first or second: the primary keeps dialling, and its guest runs",
      "ahead only as far as the flow-control limits allow (flowControl.maxLagBytes and",
      "maxLagMs in the config) until the backup has caught up.",
      "",
      "While it runs, 'ftctl status --config FILE --role ROLE' shows what it is doing. When",
      "it ends it writes final-status.json (with icount.atPowerOff) into its run directory",
      "(runtime.dir/PAIR/ROLE).",
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:the guest powered off (both controllers end this way), or stopped by a signal",
      "1:the controller failed (QEMU died, the log was corrupt, ...); the log says why",
      "2:could not start: a socket, ring, TAP or QEMU could not be set up",
      "64:bad usage or a bad configuration file (the message names the field)"
    },
    footer = {
      "",
      "Examples:",
      "  ftctl run --config /etc/qemu-ft/web1.yaml --role backup     # on host B",
      "  ftctl run --config /etc/qemu-ft/web1.yaml --role primary    # on host A",
    })
final class RunCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(names = "--config", paramLabel = "FILE", required = true, description = "The pair's configuration file.")
  Path config;

  @Option(names = "--role", paramLabel = "ROLE", required = true, description = "This host's role: primary or backup.")
  String role;

  @Override
  public Integer call() throws InterruptedException {
    PrintWriter err = spec.commandLine().getErr();
    FtConfig c;
    Role r;
    try {
      r = Roles.parse(role);
      c = FtConfig.load(config);
    } catch (ConfigException | IllegalArgumentException e) {
      err.println("ftctl run: " + e.getMessage());
      err.flush();
      return Ftctl.EXIT_USAGE;
    }
    Path shim = Path.of(System.getProperty("qemuft.shim", "libftshim.so"));
    if (!Files.isReadable(shim)) {
      err.println("ftctl run: libftshim.so not found at " + shim + " (set -Dqemuft.shim or QEMUFT_SHIM; "
          + "scripts/setup builds it into native/target/native/)");
      err.flush();
      return Ftctl.EXIT_CONNECTION;
    }
    PairController controller;
    try {
      controller = PairController.start(c, r, shim);
    } catch (IOException e) {
      err.println("ftctl run: cannot start the " + r.lower() + " of pair " + c.pair().id() + ": " + e.getMessage());
      err.flush();
      return Ftctl.EXIT_CONNECTION;
    }
    Thread hook = new Thread(controller::close, "ftctl-run-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    int code = controller.awaitEnd();
    controller.close();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // the JVM is already shutting down: the hook runs anyway
    }
    err.println("ftctl run: " + r.lower() + " ended: " + controller.endReason());
    err.flush();
    return code;
  }
}
