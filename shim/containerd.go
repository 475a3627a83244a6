package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/enarx/containerd-shim-enarx/oci"
)

// grpcNamespaceKey carries the containerd namespace in gRPC metadata.
const grpcNamespaceKey = "containerd-namespace"

// containerdAPI is what the task service asks of containerd: to label a
// container and to read its image. The daemon is the real one; tests give
// the service their own.
type containerdAPI interface {
	// Warm starts connecting in the background, so that the first call
	// does not wait for the connection; it returns at once.
	Warm()
	// SetLabels adds labels to container id of namespace ns.
	SetLabels(ctx context.Context, ns, id string, labels map[string]string) error
	// Image is the image of container id of namespace ns.
	Image(ns, id string) oci.ImageStore
}

var _ containerdAPI = (*daemon)(nil)

// daemon is the containerd API the shim calls back into: container labels
// and the image and content stores. It connects on first use.
type daemon struct {
	address string

	once sync.Once
	conn *grpc.ClientConn
	err  error
}

func (d *daemon) connect() (*grpc.ClientConn, error) {
	d.once.Do(func() {
		if d.address == "" {
			d.err = errors.New("no containerd gRPC address (-address or GRPC_ADDRESS)")
			return
		}
		target := d.address
		if !strings.HasPrefix(target, "unix://") {
			target = "unix://" + target
		}
		d.conn, d.err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	return d.conn, d.err
}

func withNamespace(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, grpcNamespaceKey, ns)
}

// SetLabels adds labels to a container, leaving its other labels alone.
func (d *daemon) SetLabels(ctx context.Context, ns, id string, labels map[string]string) error {
	conn, err := d.connect()
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err = containersapi.NewContainersClient(conn).Update(withNamespace(ctx, ns), &containersapi.UpdateContainerRequest{
		Container:  &containersapi.Container{ID: id, Labels: labels},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
	})
	if err != nil {
		return fmt.Errorf("set labels on container %s: %w", id, errgrpc.ToNative(err))
	}
	return nil
}

// Warm starts connecting to containerd in the background, so that the
// first call (Create's labels) does not wait for the connection.
func (d *daemon) Warm() {
	if conn, err := d.connect(); err == nil {
		conn.Connect()
	}
}

// Image is the image of a container, read through containerd's image and
// content services.
func (d *daemon) Image(ns, id string) oci.ImageStore {
	return containerImage{d: d, ns: ns, id: id}
}

// Close closes the connection, if any.
func (d *daemon) Close() {
	if d.conn != nil {
		d.conn.Close()
	}
}

// containerImage is the image of one container, read through containerd's
// image and content services. It implements oci.ImageStore.
type containerImage struct {
	d      *daemon
	ns, id string
}

var _ oci.ImageStore = containerImage{}

func (c containerImage) Target(ctx context.Context) (ocispec.Descriptor, error) {
	conn, err := c.d.connect()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	ctx = withNamespace(ctx, c.ns)
	ctr, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: c.id})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get container %s: %w", c.id, errgrpc.ToNative(err))
	}
	name := ctr.GetContainer().GetImage()
	if name == "" {
		return ocispec.Descriptor{}, fmt.Errorf("container %s: %w", c.id, oci.ErrNoImage)
	}
	img, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get image %s: %w", name, errgrpc.ToNative(err))
	}
	t := img.GetImage().GetTarget()
	if t == nil {
		return ocispec.Descriptor{}, fmt.Errorf("image %s has no target", name)
	}
	return ocispec.Descriptor{
		MediaType:   t.MediaType,
		Digest:      digest.Digest(t.Digest),
		Size:        t.Size,
		Annotations: t.Annotations,
	}, nil
}

func (c containerImage) Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	conn, err := c.d.connect()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(withNamespace(ctx, c.ns))
	stream, err := contentapi.NewContentClient(conn).Read(ctx, &contentapi.ReadContentRequest{Digest: desc.Digest.String()})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read content %s: %w", desc.Digest, errgrpc.ToNative(err))
	}
	return &contentReader{stream: stream, cancel: cancel}, nil
}

// contentReader turns containerd's content Read stream into an io.Reader.
type contentReader struct {
	stream contentapi.Content_ReadClient
	cancel context.CancelFunc
	buf    []byte
}

func (r *contentReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		resp, err := r.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, errgrpc.ToNative(err)
		}
		r.buf = resp.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *contentReader) Close() error {
	r.cancel()
	return nil
}
