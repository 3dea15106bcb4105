package org.qemuft.it.storage;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.qemuft.storage.Claimant;
import org.qemuft.storage.GoLiveLock;
import org.qemuft.storage.SharedStorage;
import org.qemuft.storage.StorageOptions;

/**
 * Go-live lock contenders for the torture tests: threads of this JVM (each with its own storage
 * connection) and child JVMs running {@link LockContender} with this JVM's class path. All are
 * told to try the same epoch at the same moment; {@link #round} collects what each one saw.
 */
final class Contenders implements AutoCloseable {
  /**
   * What one contender saw in one round. For a loser that found the lock file still empty after
   * waiting, recordWritten is false and winnerClaim is the winner's verifier (the first 16 hex
   * digits of its claim id) as the server keeps it.
   */
  record Result(String contender, String outcome, String winnerClaim, boolean recordWritten, String winnerRole) {}

  private interface Contender extends AutoCloseable {
    String name();

    CompletableFuture<Result> attempt(long epoch);

    @Override
    void close();
  }

  private final List<Contender> all = new ArrayList<>();

  /** Starts {@code threads} thread contenders and {@code processes} child-JVM contenders. */
  Contenders(String location, String pair, int threads, int processes, StorageOptions opts, Path logDir)
      throws IOException {
    try {
      for (int i = 0; i < threads; i++) {
        all.add(new ThreadContender(location, pair, "thread-" + i, opts));
      }
      for (int i = 0; i < processes; i++) {
        all.add(new ProcessContender(location, pair, "process-" + i, opts, logDir));
      }
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
  }

  int size() {
    return all.size();
  }

  /** Everybody tries {@code epoch} at once; waits for every answer. */
  List<Result> round(long epoch, Duration timeout) throws Exception {
    List<CompletableFuture<Result>> fs = new ArrayList<>();
    for (Contender c : all) {
      fs.add(c.attempt(epoch));
    }
    List<Result> out = new ArrayList<>();
    for (CompletableFuture<Result> f : fs) {
      out.add(f.get(timeout.toMillis(), TimeUnit.MILLISECONDS));
    }
    return out;
  }

  /**
   * Everybody tries {@code epoch}; whoever got no answer from the storage (unavailable) tries
   * again, until all have an answer or {@code maxTries} is used up.
   *
   * @param unavailable counts the unanswered attempts
   */
  List<Result> roundUntilAnswered(long epoch, int maxTries, Duration timeout, java.util.concurrent.atomic.AtomicInteger unavailable)
      throws Exception {
    Result[] out = new Result[all.size()];
    for (int t = 0; t < maxTries; t++) {
      List<Integer> idx = new ArrayList<>();
      List<CompletableFuture<Result>> fs = new ArrayList<>();
      for (int i = 0; i < all.size(); i++) {
        if (out[i] == null || out[i].outcome().equals("unavailable")) {
          idx.add(i);
          fs.add(all.get(i).attempt(epoch));
        }
      }
      if (idx.isEmpty()) {
        break;
      }
      for (int k = 0; k < idx.size(); k++) {
        out[idx.get(k)] = fs.get(k).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (out[idx.get(k)].outcome().equals("unavailable")) {
          unavailable.incrementAndGet();
        }
      }
    }
    return List.of(out);
  }

  /**
   * Checks one round: exactly one winner, and every contender names that winner: by its record,
   * or, if it found the record not written yet, by the winner's verifier.
   *
   * @return how many losers named the winner by verifier only
   */
  static int assertOneWinner(long epoch, List<Result> results) {
    List<Result> winners = results.stream().filter(r -> r.outcome().equals("won")).toList();
    assertThat(winners).as("winners of epoch %d among %s", epoch, results).hasSize(1);
    Result w = winners.getFirst();
    assertThat(w.recordWritten()).as("the winner's own record").isTrue();
    assertThat(w.winnerRole()).as("the winner's record names the winner").isEqualTo(w.contender());
    int byVerifier = 0;
    for (Result r : results) {
      assertThat(r.outcome()).as("epoch %d, %s", epoch, r).isIn("won", "lost");
      if (r.recordWritten()) {
        assertThat(r.winnerClaim()).as("winner seen by %s in epoch %d", r.contender(), epoch)
            .isEqualTo(w.winnerClaim());
        assertThat(r.winnerRole()).isEqualTo(w.contender());
      } else {
        assertThat(r.winnerClaim()).as("verifier seen by %s in epoch %d (record not written)", r.contender(), epoch)
            .matches("[0-9a-f]{16}");
        assertThat(w.winnerClaim()).startsWith(r.winnerClaim());
        byVerifier++;
      }
    }
    return byVerifier;
  }

  @Override
  public void close() {
    for (Contender c : all) {
      c.close();
    }
  }

  private static Result parse(String contender, String line) {
    String[] f = line.split(" ", 6);
    return new Result(contender, f[2], f[3], f[4].equals("written"), f.length > 5 ? f[5] : "-");
  }

  private static final class ThreadContender implements Contender {
    private final String name;
    private final String pair;
    private final SharedStorage storage;
    private final GoLiveLock lock;
    private final Claimant me;
    private final ExecutorService exec;

    ThreadContender(String location, String pair, String name, StorageOptions opts) {
      this.name = name;
      this.pair = pair;
      this.storage = SharedStorage.open(location, opts);
      this.lock = new GoLiveLock(storage);
      this.me = Claimant.thisProcess(name);
      this.exec = Executors.newSingleThreadExecutor(r -> new Thread(r, "contender " + name));
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public CompletableFuture<Result> attempt(long epoch) {
      return CompletableFuture.supplyAsync(() -> parse(name, LockContender.attempt(lock, pair, epoch, me)), exec);
    }

    @Override
    public void close() {
      exec.shutdownNow();
      storage.close();
    }
  }

  private static final class ProcessContender implements Contender {
    private final String name;
    private final Process process;
    private final Writer stdin;
    private final BlockingQueue<String> results = new LinkedBlockingQueue<>();

    ProcessContender(String location, String pair, String name, StorageOptions opts, Path logDir) throws IOException {
      this.name = name;
      String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
      process = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
          "-cp", System.getProperty("java.class.path"), LockContender.class.getName(),
          location, pair, name, Long.toString(opts.rpcTimeout().toMillis()), Long.toString(opts.waitLimit().toMillis()))
          .redirectError(ProcessBuilder.Redirect.appendTo(logDir.resolve(name + ".err").toFile()))
          .start();
      stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
      BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
      Thread reader = new Thread(() -> {
        try {
          String line;
          while ((line = out.readLine()) != null) {
            if (line.startsWith("RESULT ") || line.startsWith("READY ")) {
              results.add(line);
            }
          }
        } catch (IOException e) {
          // process ended
        }
      }, "contender " + name + " stdout");
      reader.setDaemon(true);
      reader.start();
      try {
        String ready = results.poll(60, TimeUnit.SECONDS);
        if (ready == null || !ready.startsWith("READY")) {
          process.destroyForcibly();
          throw new IOException("contender JVM " + name + " did not start (see " + logDir.resolve(name + ".err") + ")");
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
        throw new IOException("interrupted starting " + name, e);
      }
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public CompletableFuture<Result> attempt(long epoch) {
      try {
        stdin.write("ROUND " + epoch + "\n");
        stdin.flush();
      } catch (IOException e) {
        return CompletableFuture.failedFuture(new IOException("contender JVM " + name + " is gone", e));
      }
      return CompletableFuture.supplyAsync(() -> {
        try {
          String line = results.poll(10, TimeUnit.MINUTES);
          if (line == null) {
            throw new IllegalStateException("contender JVM " + name + " gave no result for epoch " + epoch);
          }
          return parse(name, line);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException(e);
        }
      });
    }

    @Override
    public void close() {
      try {
        stdin.write("QUIT\n");
        stdin.flush();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
          process.destroyForcibly();
        }
      } catch (IOException | InterruptedException e) {
        process.destroyForcibly();
      }
    }
  }
}
