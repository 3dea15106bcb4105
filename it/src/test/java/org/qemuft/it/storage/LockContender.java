package org.qemuft.it.storage;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.qemuft.storage.Claimant;
import org.qemuft.storage.GoLiveLock;
import org.qemuft.storage.SharedStorage;
import org.qemuft.storage.StorageOptions;
import org.qemuft.storage.StorageUnavailableException;

/**
 * One go-live lock contender in a child JVM, driven over stdin/stdout by the torture tests:
 * {@code ROUND <epoch>} makes it try the lock of that epoch once and print
 * {@code RESULT <epoch> won|lost|unavailable|error <winner claim id> written|unwritten <winner role>}
 * (for an error, its text instead of the role); {@code QUIT} ends it.
 *
 * <p>Arguments: location pairId role rpcTimeoutMs waitLimitMs.
 */
public final class LockContender {
  private LockContender() {}

  public static void main(String[] args) throws Exception {
    String location = args[0];
    String pair = args[1];
    String role = args[2];
    StorageOptions opts = new StorageOptions(Duration.ofMillis(Long.parseLong(args[3])),
        Duration.ofMillis(Long.parseLong(args[4])));
    Claimant me = Claimant.thisProcess(role);
    try (SharedStorage storage = SharedStorage.open(location, opts);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      GoLiveLock lock = new GoLiveLock(storage);
      System.out.println("READY " + role);
      System.out.flush();
      String line;
      while ((line = in.readLine()) != null) {
        if (line.equals("QUIT")) {
          break;
        }
        if (!line.startsWith("ROUND ")) {
          continue;
        }
        long epoch = Long.parseLong(line.substring(6).trim());
        System.out.println(attempt(lock, pair, epoch, me));
        System.out.flush();
      }
    }
  }

  /** One attempt, as the line the parent parses. */
  static String attempt(GoLiveLock lock, String pair, long epoch, Claimant me) {
    try {
      GoLiveLock.Outcome o = lock.tryAcquire(pair, epoch, me);
      return "RESULT " + epoch + " " + (o.won() ? "won" : "lost") + " " + o.winner().claimId() + " "
          + (o.winner().written() ? "written" : "unwritten") + " " + o.winner().role();
    } catch (StorageUnavailableException e) {
      return "RESULT " + epoch + " unavailable - - -";
    } catch (Exception e) {
      return "RESULT " + epoch + " error - - " + e.toString().replace('\n', ' ');
    }
  }
}
