package org.qemuft.qmp;

/**
 * The VM's run state ({@code query-status}).
 *
 * @param status QEMU's RunState, e.g. {@code running}, {@code paused}, {@code shutdown}, {@code
 *     prelaunch}, {@code inmigrate}, {@code restore-vm}, {@code debug} (a replay breakpoint hit)
 * @param running whether the vCPUs run
 */
public record VmStatus(String status, boolean running) {}
