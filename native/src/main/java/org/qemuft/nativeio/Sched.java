package org.qemuft.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/** Linux scheduling policy of one thread of any process (sched_setscheduler(2) on a thread id). */
public final class Sched {
  private static final int SCHED_OTHER = 0;
  private static final int SCHED_IDLE = 5;
  private static final MethodHandle SCHED_SETSCHEDULER = Libc.downcall("sched_setscheduler",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS),
      Libc.ERRNO);

  private static final MethodHandle SCHED_GETSCHEDULER = Libc.downcall("sched_getscheduler",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), Libc.ERRNO);

  private Sched() {}

  /**
   * The scheduling policy of thread {@code tid}, as sched_getscheduler(2) numbers it (0
   * SCHED_OTHER, 5 SCHED_IDLE, ...).
   *
   * @throws IOException naming the thread and the reason (no such thread)
   */
  public static int policy(long tid) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment st = a.allocate(Libc.CALL_STATE);
      int policy = (int) SCHED_GETSCHEDULER.invokeExact(st, Math.toIntExact(tid));
      if (policy < 0) {
        throw new IOException("cannot read the scheduling policy of thread " + tid + ": " + Libc.errnoText(st));
      }
      return policy;
    } catch (IOException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call sched_getscheduler failed for thread " + tid, t);
    }
  }

  /**
   * Puts thread {@code tid} under SCHED_IDLE: it runs only when nothing else wants its CPU (and
   * then for a minimal fair share), like {@code chrt -i -p 0 TID}.
   *
   * @throws IOException naming the thread and the reason (no such thread, not permitted)
   */
  public static void idle(long tid) throws IOException {
    set(tid, SCHED_IDLE, "SCHED_IDLE");
  }

  /** Puts thread {@code tid} back under the normal policy, SCHED_OTHER ({@code chrt -o -p 0 TID}). */
  public static void normal(long tid) throws IOException {
    set(tid, SCHED_OTHER, "SCHED_OTHER");
  }

  private static void set(long tid, int policy, String name) throws IOException {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment st = a.allocate(Libc.CALL_STATE);
      MemorySegment param = a.allocate(ValueLayout.JAVA_INT); // struct sched_param: priority 0
      int rc = (int) SCHED_SETSCHEDULER.invokeExact(st, Math.toIntExact(tid), policy, param);
      if (rc != 0) {
        throw new IOException("cannot put thread " + tid + " under " + name + ": " + Libc.errnoText(st));
      }
    } catch (IOException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call sched_setscheduler failed for thread " + tid, t);
    }
  }
}
