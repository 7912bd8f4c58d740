"""Sorts a flat profile into the costs the upload server is made of.

    perf report --no-children --sort symbol --stdio -n | python3 classify.py [--freq HZ --bytes N]
    callgrind_annotate FILE | python3 classify.py --callgrind

Reads `PCT% [SAMPLES] [k|.] symbol` lines (perf) or `N (PCT%)  file:symbol`
lines (callgrind_annotate) and prints the share of each bucket, largest
first, with its three heaviest symbols. The first matching rule wins. With
the sampling frequency and the bytes uploaded, perf samples also become CPU
milliseconds per GiB, comparable between servers.
"""

import re
import sys
from collections import defaultdict

# (bucket, where: "k" kernel, "u" user, None either, pattern)
RULES = [
    ("serde / JSON (session records, digests as hex)", "u", r"serde|json|Deserialize|Serialize|ryu|itoa|from_utf8|hex::"),
    ("SHA-256", None, r"sha2|sha256|Sha256|compress256|digest_blocks|sha_ni"),
    ("copy in the kernel (socket → user, user → page cache)", "k",
     r"copy_user|_copy_to_iter|_copy_from_iter|copy_page|memcpy|memmove|rep_movs|copyout|copyin|copy_to_user|copy_from_user"),
    ("copy in user space (memcpy / memmove)", "u", r"memcpy|memmove|memset"),
    ("allocation (malloc / free / page faults on fresh memory)", None,
     r"malloc|_int_free|\bfree\b|cfree|realloc|__rust_alloc|__rust_dealloc|__rdl_|tcache|alloc::raw_vec|"
     r"do_anonymous_page|clear_page|handle_mm_fault|exc_page_fault|do_user_addr_fault|__handle_mm_fault|"
     r"zap_|unmap_page_range|__mmap|__munmap|do_mmap|__vm_munmap|release_pages|free_unref|__free_pages|"
     r"get_page_from_freelist|__alloc_pages|alloc_pages|__folio_alloc|rmqueue|kmem_cache|__kmalloc|kfree"),
    ("kernel: filesystem, page cache, block I/O, fsync", "k",
     r"ext4|jbd2|iomap|filemap|folio|generic_perform_write|mpage|blk_|bio_|virtio|virtqueue|vring|page_cache|"
     r"__block|writeback|mark_buffer|balance_dirty|file_write|vfs_|do_sys_open|path_|dentry|d_alloc|inode|"
     r"fsync|submit_bio|crc32c|__mark_inode|lru_|xas_|radix|find_get|pagecache|truncate|recently_deleted|"
     r"find_inode|__find_get_block|iowrite|ioread|unlink|rename|link_path|lookup_|getname|d_lookup|mb_|buffer_"),
    ("kernel: TCP over loopback", "k",
     r"tcp|skb|__inet|inet_|ip_|ipv4|sock|net_rx|netif|napi|loopback|__dev_queue|dev_hard|__sys_sendto|"
     r"__sys_recvfrom|sk_|__release_sock|release_sock|lock_sock|nf_|__napi|do_softirq|__local_bh|net_"),
    ("kernel: syscalls, scheduling, wake-ups, epoll, futex", "k",
     r"entry_SYSCALL|syscall|schedule|__switch_to|futex|finish_task_switch|pick_next|enqueue|dequeue|"
     r"update_curr|update_load|epoll|ep_poll|ep_|try_to_wake_up|ttwu|wake_up|select_task|__sched|"
     r"native_|_raw_spin|raw_spin|srso|retbleed|__x64_sys|do_epoll|idle|cpuidle|irq|apic|hrtimer|timer|"
     r"rcu|preempt|restore_regs|fpu|switch_mm|__task|task_|psi_|cgroup|audit|clock|ktime|lock_|mutex|rwsem|"
     r"__fget|fput|fdget|security_|apparmor|avc_|capable"),
    ("tokio runtime (tasks, blocking pool, timers, channels)", "u", r"tokio|mio|crossbeam|parking_lot|std::sync|std::thread|futex|pthread|__lll_"),
    ("hyper / http parsing", "u", r"hyper|httparse|http::|h1::|axum|tower|bytes::"),
    ("resumable (engine, ledger, meter, sink, store)", "u", r"resumable|futures_util|async_trait|btree|BTree"),
]


def option(name):
    if name in sys.argv:
        return float(sys.argv[sys.argv.index(name) + 1])
    return None


def main():
    callgrind = "--callgrind" in sys.argv
    freq, nbytes = option("--freq"), option("--bytes")
    samples = defaultdict(int)
    buckets = defaultdict(float)
    tops = defaultdict(list)
    total = 0.0
    for line in sys.stdin:
        if callgrind:
            m = re.match(r"\s*[\d,]+\s+\(\s*([\d.]+)%\)\s+(.*)$", line)
            if not m or "PROGRAM TOTALS" in line:
                continue
            pct, sym = float(m.group(1)), m.group(2).strip()
            where = "k" if "[kernel" in sym else "u"
        else:
            m = re.match(r"\s*([\d.]+)%\s+(\d+\s+)?\[(.)\]\s+(.*)$", line)
            if not m:
                continue
            pct, where, sym = float(m.group(1)), ("k" if m.group(3) == "k" else "u"), m.group(4).strip()
            count = int(m.group(2) or 0)
        total += pct
        bucket = "other"
        for name, side, pattern in RULES:
            if side and side != where:
                continue
            if re.search(pattern, sym):
                bucket = name
                break
        buckets[bucket] += pct
        if not callgrind:
            samples[bucket] += count
        tops[bucket].append((pct, sym))
    if not total:
        print("(no samples)")
        return
    per_gib = freq and nbytes and sum(samples.values())
    if per_gib:
        total_ms = sum(samples.values()) / freq * 1000 / (nbytes / (1 << 30))
        print(f"server CPU: {total_ms:,.0f} ms per GiB uploaded ({sum(samples.values())} samples at {freq:g} Hz)")
    for name, pct in sorted(buckets.items(), key=lambda kv: -kv[1]):
        heavy = ", ".join(f"{s.split()[0][:50]} {p:.1f}%" for p, s in sorted(tops[name], reverse=True)[:3])
        ms = ""
        if per_gib:
            ms = f"{samples[name] / freq * 1000 / (nbytes / (1 << 30)):6,.0f} ms/GiB  "
        print(f"{pct:5.1f}%  {ms}{name}  [{heavy}]")


if __name__ == "__main__":
    main()
