// Can AMD's clzero claim output lines without reading them first (no read-for-ownership)?
// Writes y = 2x over 16 MB three ways: plain stores (each line read for ownership first), clzero
// of each line then plain stores, non-temporal stores; then reads y back. Caches are flushed
// by touching 64 MB first. docs/cpu_tuning_log.md ("Evening 2026-11-29") quotes its output.
//
//   gcc -O2 benchmarks/probes/clzero_store.c -o /tmp/clzero_store && /tmp/clzero_store
//
// Needs a CPU with AVX-512F and clzero (AMD Zen).
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define N (1<<22)
static float *x,*y,*other;
static void flush_caches(void){ for (size_t i=0;i<(size_t)(64<<20)/4;i+=16) other[i]+=1.0f; }
__attribute__((target("avx512f,clzero")))
static void run(int mode){
  for (size_t b=0;b<N;b+=1024){           // 4 KB chunks
    if (mode==1) for (size_t i=b;i<b+1024;i+=16) __builtin_ia32_clzero(y+i);
    for (size_t i=b;i<b+1024;i+=16){
      __m512 v=_mm512_loadu_ps(x+i); v=_mm512_add_ps(v,v);
      if (mode==2) _mm512_stream_ps(y+i,v); else _mm512_store_ps(y+i,v);
    }
  }
  if (mode==2) _mm_sfence();
}
__attribute__((target("avx512f")))
static float readback(void){ __m512 s=_mm512_setzero_ps(); for(size_t i=0;i<N;i+=16) s=_mm512_add_ps(s,_mm512_load_ps(y+i)); return _mm512_reduce_add_ps(s);}
int main(){
  x=aligned_alloc(4096,N*4); y=aligned_alloc(4096,N*4); other=aligned_alloc(4096,64<<20);
  memset(x,0,N*4); memset(y,0,N*4); memset(other,0,64<<20);
  for(size_t i=0;i<N;i++) x[i]=i*1e-6f;
  const char* names[]={"plain","clzero+st","nt"};
  for (int rep=0;rep<5;rep++) for(int m=0;m<3;m++){
    double ts[9],tr[9];
    for(int k=0;k<9;k++){ flush_caches(); double t0=now(); run(m); double t1=now(); float s=readback(); double t2=now(); ts[k]=t1-t0; tr[k]=t2-t1; if(s==1234.5f)puts("");}
    for(int i=0;i<9;i++)for(int j=i+1;j<9;j++){if(ts[j]<ts[i]){double q=ts[i];ts[i]=ts[j];ts[j]=q;} if(tr[j]<tr[i]){double q=tr[i];tr[i]=tr[j];tr[j]=q;}}
    printf("%-10s write %.3f ns/el  readback %.3f ns/el\n",names[m],ts[4]/N*1e9,tr[4]/N*1e9);
  }
}
