package org.qemuft.controller.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code ftctl}: the operator's command line for qemu-ft. Each subcommand is its own class in
 * this package; this class only lists them and maps failures to exit codes.
 *
 * <p>Exit codes shared by all subcommands: 0 success, 1 the operation was refused or failed
 * (QEMU answered with an error, a check did not hold), 2 a connection or I/O problem,
 * 64 bad usage.
 */
@Command(
    name = "ftctl",
    mixinStandardHelpOptions = true,
    versionProvider = Ftctl.Version.class,
    description = "Fault-tolerant QEMU: control and inspect qemu-ft.",
    subcommands = {CommandLine.HelpCommand.class, RunCommand.class, StatusCommand.class, QmpCommand.class,
        RrScanCommand.class},
    footer = {"", "Run 'ftctl help COMMAND' for a command's options."})
public final class Ftctl implements Runnable {
  public static final int EXIT_OK = 0;
  public static final int EXIT_FAILED = 1;
  public static final int EXIT_CONNECTION = 2;
  public static final int EXIT_USAGE = 64;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "missing command");
  }

  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /** The configured command line, also used by tests to run ftctl in-process. */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Ftctl());
    // With a mapper set, picocli asks it for parse errors too (not exitCodeOnInvalidInput).
    cl.setExitCodeExceptionMapper(
        e -> e instanceof CommandLine.ParameterException ? EXIT_USAGE : EXIT_FAILED);
    return cl;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Ftctl.class.getPackage().getImplementationVersion();
      return new String[] {"ftctl " + (v == null ? "(development build)" : v)};
    }
  }
}
