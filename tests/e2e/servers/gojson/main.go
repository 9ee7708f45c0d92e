// A small MCP server over stdio that decodes messages the way many Go servers do: with
// encoding/json into structs. encoding/json matches object members to struct fields
// case-insensitively, with Unicode folding ("Arguments", "argumentſ" and "arguments" all
// fill Arguments; "AMOUNT" and "amount" with a Kelvin sign fill Amount), and for a member
// given twice the last one wins. The end-to-end tests use it to show what such a server
// runs, directly and behind toolgate.
//
// Every tools/call it runs is appended, as the decoded Go values, to the file named by
// GOJSON_CALL_LOG, so a test can see exactly what reached the tool.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type payArgs struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Payment  struct {
		Amount int64 `json:"amount"`
	} `json:"payment"`
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			continue
		}
		if len(req.ID) == 0 {
			continue // a notification
		}
		result, rpcErr := handle(req)
		var reply map[string]interface{}
		if rpcErr != "" {
			reply = map[string]interface{}{"jsonrpc": "2.0", "id": req.ID,
				"error": map[string]interface{}{"code": -32602, "message": rpcErr}}
		} else {
			reply = map[string]interface{}{"jsonrpc": "2.0", "id": req.ID, "result": result}
		}
		line, _ := json.Marshal(reply)
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	}
}

func handle(req request) (interface{}, string) {
	switch req.Method {
	case "initialize":
		return map[string]interface{}{
			"protocolVersion": "2025-06-18",
			"capabilities":    map[string]interface{}{"tools": map[string]interface{}{}},
			"serverInfo":      map[string]interface{}{"name": "gojson", "version": "1"},
		}, ""
	case "ping":
		return map[string]interface{}{}, ""
	case "tools/list":
		schema := map[string]interface{}{"type": "object", "properties": map[string]interface{}{
			"amount":   map[string]interface{}{"type": "integer"},
			"currency": map[string]interface{}{"type": "string"},
			"payment":  map[string]interface{}{"type": "object"},
		}}
		return map[string]interface{}{"tools": []interface{}{
			map[string]interface{}{"name": "pay", "description": "Pay an amount", "inputSchema": schema},
		}}, ""
	case "tools/call":
		var p callParams
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return nil, "bad params: " + err.Error()
		}
		if p.Name != "pay" {
			return nil, "Unknown tool: " + p.Name
		}
		var a payArgs
		if len(p.Arguments) > 0 {
			if err := json.Unmarshal(p.Arguments, &a); err != nil {
				return nil, "bad arguments: " + err.Error()
			}
		}
		record(a)
		text := fmt.Sprintf("paid %d %s (payment.amount %d)", a.Amount, a.Currency, a.Payment.Amount)
		return map[string]interface{}{"content": []interface{}{
			map[string]interface{}{"type": "text", "text": text},
		}}, ""
	}
	return nil, "Method not found: " + req.Method
}

func record(a payArgs) {
	path := os.Getenv("GOJSON_CALL_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	line, _ := json.Marshal(map[string]interface{}{
		"amount": a.Amount, "currency": a.Currency, "payment_amount": a.Payment.Amount,
	})
	f.Write(append(line, '\n'))
}
