package org.qemuft.qmp;

/**
 * The VM's run state ({@code query-status}).
 *
 * @param status QEMU's RunState, e.g. {@code running}, {@code paused} (also after a replay
 *     breakpoint), {@code shutdown} (with {@code -action shutdown=pause}), {@code prelaunch} ({@code
 *     -S}), {@code restore-vm} (while a snapshot loads, and after a load that failed)
 * @param running whether the vCPUs run
 */
public record VmStatus(String status, boolean running) {}
