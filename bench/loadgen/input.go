package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Request is one pre-built HTTP POST: its lane (a signer, whose requests keep their file order),
// the path it goes to and its body. Its id is its position among the file's requests (0-based).
type Request struct {
	Lane int
	Path string
	Body []byte
}

// ReadBodies reads a body file: one request per line, three tab-separated fields
//
//	<lane>\t<path>\t<base64 body>
//
// where lane is a non-negative integer (the signer or lane id), path starts with "/" and the body
// is standard base64 (RFC 4648, padded). Blank lines and lines starting with '#' are skipped.
// Every error names the line it is on.
func ReadBodies(r io.Reader) ([]Request, error) {
	var out []Request
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want 3 tab-separated fields (lane, path, base64 body), got %d", line, len(fields))
		}
		lane, err := strconv.Atoi(fields[0])
		if err != nil || lane < 0 {
			return nil, fmt.Errorf("line %d: lane %q is not a non-negative integer", line, fields[0])
		}
		if !strings.HasPrefix(fields[1], "/") {
			return nil, fmt.Errorf("line %d: path %q does not start with /", line, fields[1])
		}
		body, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: body is not base64: %v", line, err)
		}
		out = append(out, Request{Lane: lane, Path: fields[1], Body: body})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %v", line+1, err)
	}
	return out, nil
}

// ReadBodiesFile is ReadBodies on a named file ("-" is standard input).
func ReadBodiesFile(path string) ([]Request, error) {
	if path == "-" {
		return ReadBodies(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadBodies(f)
}
