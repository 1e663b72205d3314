package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strconv"
)

// Record is what happened to one request: when it left (Unix ns, wall clock, so that another process
// can compare it with when it saw the transaction committed), how long its response took, the HTTP
// status (0: no response) and the result code read from the body (0: accepted).
type Record struct {
	Sent   int64
	Dur    int64
	Status int32
	Code   int32
	Done   bool
}

// Transport-level outcomes, outside every ledger's and JSON-RPC's code ranges.
const (
	CodeUnreadable = -1 // an error response whose body names no code
	CodeTransport  = -2 // no response: connection refused, reset or timed out
)

type errorBody struct {
	Error *struct {
		Code    *int            `json:"code"`
		Name    string          `json:"name"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

var errorMarker = []byte(`"error"`)

// ResultCode reads a response's result code: 0 for a 2xx answer without an "error" member; else the
// "error" object's "code" (CareLedger's stable codes, or a JSON-RPC error code), with a short
// description for the report; CodeUnreadable when an error names no code.
func ResultCode(status int, body []byte) (int, string) {
	ok := status >= 200 && status < 300
	if ok && !bytes.Contains(body, errorMarker) {
		return 0, ""
	}
	var doc errorBody
	if err := json.Unmarshal(body, &doc); err == nil && doc.Error != nil && doc.Error.Code != nil {
		text := doc.Error.Name
		if text == "" {
			text = doc.Error.Message
		} else if doc.Error.Message != "" {
			text += ": " + doc.Error.Message
		}
		if len(text) > 200 {
			text = text[:200]
		}
		return *doc.Error.Code, text
	}
	if ok {
		return 0, ""
	}
	text := string(body)
	if len(text) > 200 {
		text = text[:200]
	}
	return CodeUnreadable, "HTTP " + strconv.Itoa(status) + ": " + text
}

// WriteRecords writes one JSON line per request that left: {"i":id,"t":sent_ns,"d":duration_ns,
// "s":status,"c":code}.
func WriteRecords(path string, records []Record) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, 96)
	for i, r := range records {
		if !r.Done {
			continue
		}
		buf = append(buf[:0], `{"i":`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `,"t":`...)
		buf = strconv.AppendInt(buf, r.Sent, 10)
		buf = append(buf, `,"d":`...)
		buf = strconv.AppendInt(buf, r.Dur, 10)
		buf = append(buf, `,"s":`...)
		buf = strconv.AppendInt(buf, int64(r.Status), 10)
		buf = append(buf, `,"c":`...)
		buf = strconv.AppendInt(buf, int64(r.Code), 10)
		buf = append(buf, "}\n"...)
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
