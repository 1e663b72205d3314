package main

import "sync"

// Scheduler hands out requests to workers so that each lane's requests go in file order and at most
// depth of one lane's requests are in flight at once (depth 1: the next one leaves only after the
// previous one's response came back, so they also arrive in order; depth 0: no limit). Lanes take
// turns (first in, first out), so many lanes proceed concurrently.
type Scheduler struct {
	mu         sync.Mutex
	cond       *sync.Cond
	depth      int
	lanes      []laneState
	ready      []int // lane indexes with a request that may leave now, in turn order
	head       int
	total      int
	dispatched int
}

type laneState struct {
	reqs     []int // request ids, in file order
	next     int
	inflight int
	queued   bool
}

// NewScheduler groups the given request ids by lane (keeping their order) for workers to Take.
func NewScheduler(reqs []Request, ids []int, depth int) *Scheduler {
	s := &Scheduler{depth: depth, total: len(ids)}
	s.cond = sync.NewCond(&s.mu)
	index := map[int]int{}
	for _, id := range ids {
		lane := reqs[id].Lane
		li, ok := index[lane]
		if !ok {
			li = len(s.lanes)
			index[lane] = li
			s.lanes = append(s.lanes, laneState{})
		}
		s.lanes[li].reqs = append(s.lanes[li].reqs, id)
	}
	for li := range s.lanes {
		s.lanes[li].queued = true
		s.ready = append(s.ready, li)
	}
	return s
}

// Lanes is the number of distinct lanes.
func (s *Scheduler) Lanes() int { return len(s.lanes) }

func (s *Scheduler) mayLeave(l *laneState) bool {
	return l.next < len(l.reqs) && (s.depth <= 0 || l.inflight < s.depth)
}

// Take blocks until a request may leave and returns its id and its lane's index; ok is false once
// every request has been handed out.
func (s *Scheduler) Take() (id int, lane int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.dispatched == s.total {
			return 0, 0, false
		}
		if s.head < len(s.ready) {
			li := s.ready[s.head]
			s.head++
			if s.head > 4096 && s.head*2 > len(s.ready) { // drop the consumed prefix now and then
				s.ready = append(s.ready[:0], s.ready[s.head:]...)
				s.head = 0
			}
			l := &s.lanes[li]
			id = l.reqs[l.next]
			l.next++
			l.inflight++
			s.dispatched++
			if s.mayLeave(l) {
				s.ready = append(s.ready, li)
				s.cond.Signal()
			} else {
				l.queued = false
			}
			if s.dispatched == s.total {
				s.cond.Broadcast()
			}
			return id, li, true
		}
		s.cond.Wait()
	}
}

// Done reports that a request of lane li got its response (or failed), letting the lane's next leave.
func (s *Scheduler) Done(li int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.lanes[li]
	l.inflight--
	if !l.queued && s.mayLeave(l) {
		l.queued = true
		s.ready = append(s.ready, li)
		s.cond.Signal()
	}
}
