/**
 * QEMU 7.2's replay-log format (REPLAY_VERSION 0x00e0200c) in plain Java: an incremental,
 * allocation-free {@link org.qemuft.replaylog.ReplayLogScanner} that finds whole events and the
 * running instruction count in a log arriving in arbitrary chunks, and {@link
 * org.qemuft.replaylog.ReplayLogEncoder} for the events qemu-ft writes itself (the go-live tail).
 * The format as verified against QEMU's source and real recordings is in docs/replay-log.md.
 */
package org.qemuft.replaylog;
