package org.qemuft.qmp;

/**
 * Record/replay state ({@code query-replay}).
 *
 * @param mode {@code none}, {@code record} or {@code play}
 * @param filename the replay log ({@code rrfile=}); null when there is none
 * @param icount the VM's current instruction count (in record mode: instructions executed so far)
 */
public record ReplayInfo(String mode, String filename, long icount) {}
