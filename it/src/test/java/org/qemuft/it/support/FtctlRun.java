package org.qemuft.it.support;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** Runs the real wrapper {@code scripts/ftctl} as an operator would, and always ends it. */
public final class FtctlRun {
  private static final long TIMEOUT_SECONDS = 120;

  /** What one run printed and returned. */
  public record Result(int exit, String out, String err) {
    @Override
    public String toString() {
      return "exit " + exit + "\nstdout: " + out + "\nstderr: " + err;
    }
  }

  private FtctlRun() {}

  public static Result run(String... args) throws Exception {
    Path root = Path.of(System.getProperty("qemuft.root"));
    Path script = root.resolve("scripts/ftctl");
    if (!Files.isExecutable(script)) {
      throw new IllegalStateException(script + " is missing or not executable");
    }
    List<String> cmd = new ArrayList<>(List.of(script.toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
    ExecutorService ex = Executors.newSingleThreadExecutor();
    try {
      Future<String> err = ex.submit(() -> new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        throw new AssertionError("scripts/ftctl " + String.join(" ", args) + " did not finish in "
            + TIMEOUT_SECONDS + " s");
      }
      return new Result(p.exitValue(), out, err.get());
    } finally {
      ex.shutdownNow();
      p.destroyForcibly();
      p.waitFor();
    }
  }
}
