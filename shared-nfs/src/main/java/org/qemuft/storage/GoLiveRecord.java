package org.qemuft.storage;

import java.time.Instant;

/**
 * What the go-live lock of one pair and epoch says: who won it and when.
 *
 * @param pairId the protected pair
 * @param epoch the epoch the lock is for
 * @param host the winner's host
 * @param pid the winner's controller process id
 * @param role the winner's role when it claimed the lock
 * @param claimedAt the winner's wall clock when it claimed (informational: clocks differ)
 * @param claimId random id of the winning claim; unique per {@link GoLiveLock#tryAcquire} call
 */
public record GoLiveRecord(String pairId, long epoch, String host, long pid, String role,
    Instant claimedAt, String claimId) {

  /** One line for logs and operators. */
  public String summary() {
    return "pair " + pairId + " epoch " + epoch + " won by " + role + " on " + host + " (pid " + pid
        + ") at " + claimedAt + ", claim " + claimId;
  }
}
