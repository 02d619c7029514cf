#include "device/uring_writer.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ovl {

namespace {

int io_uring_setup(unsigned entries, io_uring_params* params) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, params));
}

int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(::syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, nullptr, 0));
}

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif

template <typename T>
T* at(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + offset);
}

}  // namespace

std::unique_ptr<UringWriter> UringWriter::create(unsigned entries) {
  std::unique_ptr<UringWriter> writer(new UringWriter());
  io_uring_params params{};
  // Newest flags first: the completions of a single submitter are then run only when it asks.
  const unsigned flag_sets[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
  int fd = -1;
  for (unsigned flags : flag_sets) {
    params = io_uring_params{};
    params.flags = flags;
    fd = io_uring_setup(entries, &params);
    if (fd >= 0) break;
    if (errno != EINVAL) return nullptr;  // ENOSYS, EPERM (disabled), ...
  }
  if (fd < 0) return nullptr;
  writer->ring_.reset(fd);
  writer->entries_ = params.sq_entries;

  writer->sq_ring_size_ = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  writer->cq_ring_size_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  const bool single_mmap = params.features & IORING_FEAT_SINGLE_MMAP;
  if (single_mmap) writer->sq_ring_size_ = writer->cq_ring_size_ = std::max(writer->sq_ring_size_, writer->cq_ring_size_);
  writer->sq_ring_ = ::mmap(nullptr, writer->sq_ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (writer->sq_ring_ == MAP_FAILED) {
    writer->sq_ring_ = nullptr;
    return nullptr;
  }
  if (single_mmap) {
    writer->cq_ring_ = writer->sq_ring_;
  } else {
    writer->cq_ring_ = ::mmap(nullptr, writer->cq_ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (writer->cq_ring_ == MAP_FAILED) {
      writer->cq_ring_ = nullptr;
      return nullptr;
    }
  }
  writer->sqes_size_ = params.sq_entries * sizeof(io_uring_sqe);
  void* sqes = ::mmap(nullptr, writer->sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return nullptr;
  writer->sqes_ = static_cast<io_uring_sqe*>(sqes);

  writer->sq_tail_ = at<unsigned>(writer->sq_ring_, params.sq_off.tail);
  writer->sq_mask_ = at<unsigned>(writer->sq_ring_, params.sq_off.ring_mask);
  writer->sq_array_ = at<unsigned>(writer->sq_ring_, params.sq_off.array);
  writer->cq_head_ = at<unsigned>(writer->cq_ring_, params.cq_off.head);
  writer->cq_tail_ = at<unsigned>(writer->cq_ring_, params.cq_off.tail);
  writer->cq_mask_ = at<unsigned>(writer->cq_ring_, params.cq_off.ring_mask);
  writer->cqes_ = at<io_uring_cqe>(writer->cq_ring_, params.cq_off.cqes);
  writer->local_tail_ = *writer->sq_tail_;
  return writer;
}

UringWriter::~UringWriter() {
  if (sqes_) ::munmap(sqes_, sqes_size_);
  if (cq_ring_ && cq_ring_ != sq_ring_) ::munmap(cq_ring_, cq_ring_size_);
  if (sq_ring_) ::munmap(sq_ring_, sq_ring_size_);
}

void UringWriter::queue_write(int fd, const void* data, uint32_t length, uint64_t tag) {
  queue(IORING_OP_WRITE, fd, reinterpret_cast<uint64_t>(data), length, tag);
}

void UringWriter::queue_writev(int fd, const iovec* parts, uint32_t count, uint64_t tag) {
  queue(IORING_OP_WRITEV, fd, reinterpret_cast<uint64_t>(parts), count, tag);
}

void UringWriter::queue(uint8_t opcode, int fd, uint64_t address, uint32_t length, uint64_t tag) {
  const unsigned index = local_tail_ & *sq_mask_;
  io_uring_sqe& sqe = sqes_[index];
  std::memset(&sqe, 0, sizeof sqe);
  sqe.opcode = opcode;
  sqe.fd = fd;
  sqe.addr = address;
  sqe.len = length;
  sqe.off = 0;  // a TUN/TAP fd has no file position
  sqe.user_data = tag;
  sq_array_[index] = index;
  local_tail_++;
  queued_++;
  // The kernel reads the SQE only after it sees the new tail.
  __atomic_store_n(sq_tail_, local_tail_, __ATOMIC_RELEASE);
}

bool UringWriter::enter(unsigned to_submit) {
  for (;;) {
    const int done = io_uring_enter(ring_.get(), to_submit, to_submit ? to_submit : 1, IORING_ENTER_GETEVENTS);
    if (done >= 0) {
      queued_ -= std::min<unsigned>(queued_, static_cast<unsigned>(done));
      return true;
    }
    if (errno == EINTR) continue;
    return false;
  }
}

}  // namespace ovl
