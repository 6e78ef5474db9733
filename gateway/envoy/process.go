package envoy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/rest"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
)

// Process is the ext_proc door: for one HTTP exchange Envoy sends the
// backend's response headers, then its body (one message in BUFFERED mode,
// chunks in STREAMED mode) and possibly trailers. Process takes the waiting
// exchange named by the ext_authz metadata, checks the answer as the REST
// adapter does (200, JSON, within the limit), runs the core's FinishQuery
// over the body (validate, row scope, project, mask, outcome record) and
// replaces the body and its headers with the core's answer; a refusal
// becomes an ImmediateResponse with the native door's problem JSON. A stream
// that ends before the answer is whole records the exchange as abandoned.
// The stream's span continues the trace Envoy hands over, or the
// exchange's own from Check (trace.go).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	if err := s.fromEnvoy(ctx); err != nil {
		return err
	}
	p := &processing{s: s, ctx: ctx, opened: time.Now()}
	defer p.endProcess()
	defer p.abandon()
	for {
		in, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		out, err := p.handle(in)
		if err != nil {
			return err
		}
		p.noteProcess(out)
		if err := stream.Send(out); err != nil {
			return err
		}
		if _, ok := out.Response.(*extprocv3.ProcessingResponse_ImmediateResponse); ok {
			return nil
		}
	}
}

// processing is one ext_proc stream's state.
type processing struct {
	s   *Server
	ctx context.Context
	x   *exchange.Exchange
	// body collects the response body; done is set once the exchange's
	// outcome is recorded.
	body bytes.Buffer
	done bool
	// sawHeaders is set once the response headers passed the answer rule.
	sawHeaders bool
	// relayStatus and relayed are a relayed answer's status and headers.
	relayStatus int
	relayed     http.Header
	// opened is when the stream opened; span is the stream's (started at
	// its first message, see trace.go), noted once it holds the outcome.
	opened time.Time
	span   trace.Span
	noted  bool
}

// abandon records the outcome of an exchange the stream took but did not
// finish (Envoy reset the stream, the caller went away).
func (p *processing) abandon() {
	if p.x != nil && !p.done {
		p.done = true
		ref := p.s.cfg.Core.Abandon(context.WithoutCancel(p.ctx), p.x, false)
		if p.span != nil && !p.noted {
			p.noted = true
			noteOutcome(p.span, p.x.ID(), ref.Status, ref.Kind)
		}
	}
}

func (p *processing) handle(in *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if p.done {
		// Trailers after the answered body pass as they are; nothing else
		// may follow the answer.
		if _, ok := in.Request.(*extprocv3.ProcessingRequest_ResponseTrailers); ok {
			return trailersPass(), nil
		}
		return nil, status.Error(codes.FailedPrecondition, "the exchange is already answered")
	}
	if p.x == nil {
		h, err := ReadHandover(in.GetMetadataContext().GetFilterMetadata()[Namespace])
		if err != nil {
			p.beginProcess(in, nil)
			return immediate(unknownExchange(err.Error())), nil
		}
		w := p.s.take(h.Handle)
		if w == nil {
			p.beginProcess(in, nil)
			return immediate(unknownExchange("the exchange is not waiting at this gateway (never allowed, already answered, or its wait ended)")), nil
		}
		// The answer is back from upstream: its span ends, the stream's begins.
		endUpstream(w.upstream, "")
		x := w.x
		p.x = x
		p.beginProcess(in, w)
		if !handoverOf(h.Handle, x).same(h) {
			p.done = true
			p.s.cfg.Log.Error("ext_proc metadata does not match the decision", "exchange", x.ID(), "fault", "handover")
			return immediate(p.s.cfg.Core.Refuse(p.ctx, x, http.StatusInternalServerError, exchange.KindInternal, "the decision could not be applied")), nil
		}
	}
	if p.x.Record().Side == "consumer" {
		return p.relay(in), nil
	}
	if p.x.Record().Mode == string(catalog.ModeVerify) {
		return p.verify(in), nil
	}
	switch r := in.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		// A query's request goes on to the backend untouched; its stream
		// starts at the response (the route skips request headers).
		p.done = true
		return immediate(p.s.cfg.Core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "a query's answer is filtered at the response, not the request")), nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.headers(r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		if !p.sawHeaders {
			// The backend's status and media type were never checked (an
			// ext_proc configured to skip response headers): fail closed.
			p.done = true
			return immediate(p.s.cfg.Core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "the answer's headers were not seen")), nil
		}
		return p.chunk(r.ResponseBody), nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		// Trailers before the body was answered (STREAMED chunks held back
		// without end_of_stream, or no body at all): a trailers answer
		// cannot carry the filtered body, so the exchange fails closed.
		p.done = true
		return immediate(p.s.cfg.Core.Abandon(p.ctx, p.x, false)), nil
	}
	return nil, status.Error(codes.InvalidArgument, "only request headers, and response headers, body and trailers are processed")
}

// headers checks the backend's status and media type as the REST adapter
// does, and removes every header the backend set (Content-Length first:
// the body will change), so only the core's headers leave.
func (p *processing) headers(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	var code int
	var contentType string
	contentLength := int64(-1)
	var remove []string
	for _, hv := range h.GetHeaders().GetHeaders() {
		v := headerValue(hv)
		switch strings.ToLower(hv.GetKey()) {
		case ":status":
			code, _ = strconv.Atoi(v)
		case "content-type":
			contentType = v
		case "content-length":
			contentLength, _ = strconv.ParseInt(v, 10, 64)
		}
		if !strings.HasPrefix(hv.GetKey(), ":") {
			remove = append(remove, strings.ToLower(hv.GetKey()))
		}
	}
	if err := rest.CheckAnswer(code, contentType, contentLength, p.s.cfg.MaxResponseBytes); err != nil {
		p.done = true
		return immediate(p.s.cfg.Core.BackendFailed(p.ctx, p.x, err))
	}
	p.sawHeaders = true
	if h.GetEndOfStream() {
		// No body follows: the core judges the empty answer.
		return p.finishImmediate()
	}
	mut := &extprocv3.HeaderMutation{}
	if p.s.cfg.Streamed {
		// Headers leave before the body: set the core's now (every one is
		// known at the decision, Content-Length excepted). A header set
		// here is not also removed, whatever order Envoy applies them in.
		mut.SetHeaders = answerHeaders(&exchange.Answer{ContentType: "application/json", ExchangeID: p.x.ID(), RequestHash: p.x.RequestHash(), Withheld: p.x.Withheld()}, -1)
	}
	for _, name := range remove {
		if !slices.ContainsFunc(mut.SetHeaders, func(o *corev3.HeaderValueOption) bool { return o.GetHeader().GetKey() == name }) {
			mut.RemoveHeaders = append(mut.RemoveHeaders, name)
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
		Response: &extprocv3.CommonResponse{HeaderMutation: mut},
	}}}
}

// chunk takes one body message. In BUFFERED mode it is the whole body; in
// STREAMED mode chunks are held back (answered empty) until end_of_stream,
// whose answer carries the whole filtered body.
func (p *processing) chunk(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if int64(p.body.Len()+len(b.GetBody())) > p.s.cfg.MaxResponseBytes {
		p.done = true
		return immediate(p.s.cfg.Core.BackendFailed(p.ctx, p.x, adapters.ErrTooLarge))
	}
	p.body.Write(b.GetBody())
	if p.s.cfg.Streamed && !b.GetEndOfStream() {
		return bodyResponse(&extprocv3.CommonResponse{
			Status:       extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}},
		})
	}
	a, ref := p.finish()
	if ref != nil {
		return immediate(ref)
	}
	common := &extprocv3.CommonResponse{
		Status:       extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}},
	}
	if !p.s.cfg.Streamed {
		// BUFFERED: the headers wait for the body, so they are set here,
		// Content-Length to the filtered body's length.
		common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: answerHeaders(a, len(a.Body))}
	}
	return bodyResponse(common)
}

// finish runs the core's end of the query over the collected body.
func (p *processing) finish() (*exchange.Answer, *exchange.Refusal) {
	p.done = true
	return p.s.cfg.Core.FinishQuery(p.ctx, p.x, exchange.Body{Reader: bytes.NewReader(p.body.Bytes())})
}

// verify answers a verification, which the gateway serves whole: at the
// request headers (the verify route sends them and routes nowhere), the
// core's FinishVerify fetches the record through the dataset's adapter,
// compares the claims and records the outcome, and the answer or refusal
// goes back as an ImmediateResponse. Any other message means Envoy routed
// the verification somewhere: fail closed.
func (p *processing) verify(in *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	p.done = true
	if _, ok := in.Request.(*extprocv3.ProcessingRequest_RequestHeaders); !ok {
		p.s.cfg.Log.Error("a verification reached ext_proc past its request headers", "exchange", p.x.ID(), "fault", "verify-route")
		return immediate(p.s.cfg.Core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "the verification was not answered by the gateway"))
	}
	return answerImmediate(p.s.cfg.Core.FinishVerify(p.ctx, p.x))
}

// finishImmediate answers a body-less response whole, as an
// ImmediateResponse (the core's answer or refusal).
func (p *processing) finishImmediate() *extprocv3.ProcessingResponse {
	return answerImmediate(p.finish())
}

// answerImmediate is the core's answer or refusal as an ImmediateResponse.
func answerImmediate(a *exchange.Answer, ref *exchange.Refusal) *extprocv3.ProcessingResponse {
	if ref != nil {
		return immediate(ref)
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.Status)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: answerHeaders(a, -1)},
		Body:    a.Body,
	}}}
}

func trailersPass() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
}

func bodyResponse(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: c}}}
}

// answerHeaders are the core's headers of an answer, with Content-Length
// when n >= 0.
func answerHeaders(a *exchange.Answer, n int) []*corev3.HeaderValueOption {
	fields := a.Headers()
	if n >= 0 {
		fields = append(fields, exchange.Field{Name: "Content-Length", Value: strconv.Itoa(n)})
	}
	return headerOptions(fields)
}

func headerOptions(fields []exchange.Field) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(fields))
	for _, f := range fields {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(f.Name), RawValue: []byte(f.Value)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// immediate is a refusal as ext_proc's ImmediateResponse: the refusal's
// status, headers and problem JSON, as the native door sends them.
func immediate(ref *exchange.Refusal) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(ref.Status)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: headerOptions(ref.Headers())},
		Body:    ref.Body(),
		Details: "lienthong_" + ref.Kind,
	}}}
}

// unknownExchange refuses a response no waiting exchange claims: nothing of
// it may pass. There is no exchange to record it under; it is logged.
func unknownExchange(detail string) *exchange.Refusal {
	return &exchange.Refusal{Kind: exchange.KindInternal, Status: http.StatusBadGateway, Detail: "the answer belongs to no exchange this gateway allowed: " + detail}
}

// headerValue is a header's value as Envoy sends it (raw_value in current
// Envoy, value in older ones).
func headerValue(h *corev3.HeaderValue) string {
	if len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}
