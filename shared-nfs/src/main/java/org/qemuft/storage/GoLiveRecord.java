package org.qemuft.storage;

import java.time.Instant;
import java.util.Objects;

/**
 * What the go-live lock of one pair and epoch says: who won it and when.
 *
 * <p>The lock is taken by an exclusive create, and the winner writes this record into the lock
 * file right after. A lock file found empty (after waiting for the record) is still a taken
 * lock: its record has {@code written} false, only {@code pairId}, {@code epoch} and {@code
 * claimId} mean anything, and {@code claimId} is then the winner's verifier (the first 16 hex
 * digits of its claim id) as the server keeps it, or "unknown" if the server no longer shows it.
 *
 * @param pairId the protected pair
 * @param epoch the epoch the lock is for
 * @param host the winner's host ("unknown" if not written)
 * @param pid the winner's controller process id (-1 if not written)
 * @param role the winner's role when it claimed the lock ("unknown" if not written)
 * @param claimedAt the winner's wall clock when it claimed (informational: clocks differ; the
 *     epoch instant if not written)
 * @param claimId random id of the winning claim, unique per claimant, pair and epoch; for a record
 *     not written, the winner's verifier in hex or "unknown"
 * @param written whether the winner's record was in the lock file
 */
public record GoLiveRecord(String pairId, long epoch, String host, long pid, String role,
    Instant claimedAt, String claimId, boolean written) {

  public GoLiveRecord {
    Objects.requireNonNull(pairId, "pairId");
    Objects.requireNonNull(host, "host");
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(claimedAt, "claimedAt");
    Objects.requireNonNull(claimId, "claimId");
  }

  /** A record as the winner wrote it. */
  public GoLiveRecord(String pairId, long epoch, String host, long pid, String role, Instant claimedAt,
      String claimId) {
    this(pairId, epoch, host, pid, role, claimedAt, claimId, true);
  }

  /** A taken lock whose record is not (yet) in the lock file; {@code claim} is the verifier in hex or "unknown". */
  static GoLiveRecord unwritten(String pairId, long epoch, String claim) {
    return new GoLiveRecord(pairId, epoch, "unknown", -1, "unknown", Instant.EPOCH, claim, false);
  }

  /** One line for logs and operators. */
  public String summary() {
    if (!written) {
      return "pair " + pairId + " epoch " + epoch + " taken by claim " + claimId + ", record not written"
          + " (the winner stopped between its exclusive create and writing its record, or is still writing"
          + " it; the lock is taken all the same)";
    }
    return "pair " + pairId + " epoch " + epoch + " won by " + role + " on " + host + " (pid " + pid
        + ") at " + claimedAt + ", claim " + claimId;
  }
}
