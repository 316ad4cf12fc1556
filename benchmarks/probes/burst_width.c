// How wide may a pass's burst of loads and plain stores be when the lines miss the caches?
// Each thread takes its share of a 16 MB x -> y: it loads R vectors (R lines) of x, runs log2(R)
// butterfly stages across them in registers, and stores R lines of y; R = 4, 8, 16. Prints the
// median ns per element of 15 calls, three times. On Zen 4 (2 threads) R = 16 was 20-25 % slower
// than R = 8, and up to 2.3x with x 64 bytes past a 4 KB boundary; hence the leaf pass's cap of
// 8 vectors there (fwht_cpu_impl.h). Quoted in docs/cpu_tuning_log.md ("Evening 2026-11-29").
//
//   gcc -O2 -fopenmp benchmarks/probes/burst_width.c -o /tmp/burst_width
//   /tmp/burst_width THREADS X_OFFSET_BYTES      e.g. /tmp/burst_width 2 64
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define N (1<<22)
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
__attribute__((target("avx512f"))) static void run(const float* x, float* y, long n, int R){
  if (R==8) for (long b=0;b<n;b+=8*16){ __m512 a[8]; for(int k=0;k<8;k++) a[k]=_mm512_loadu_ps(x+b+16*k);
      for(int h=1;h<8;h*=2) for(int i=0;i<8;i++) if(!(i&h)){__m512 l=a[i],u=a[i+h]; a[i]=_mm512_add_ps(l,u); a[i+h]=_mm512_sub_ps(l,u);}
      for(int k=0;k<8;k++) _mm512_storeu_ps(y+b+16*k,a[k]); }
  else if (R==16) for (long b=0;b<n;b+=16*16){ __m512 a[16]; for(int k=0;k<16;k++) a[k]=_mm512_loadu_ps(x+b+16*k);
      for(int h=1;h<16;h*=2) for(int i=0;i<16;i++) if(!(i&h)){__m512 l=a[i],u=a[i+h]; a[i]=_mm512_add_ps(l,u); a[i+h]=_mm512_sub_ps(l,u);}
      for(int k=0;k<16;k++) _mm512_storeu_ps(y+b+16*k,a[k]); }
  else for (long b=0;b<n;b+=4*16){ __m512 a[4]; for(int k=0;k<4;k++) a[k]=_mm512_loadu_ps(x+b+16*k);
      for(int h=1;h<4;h*=2) for(int i=0;i<4;i++) if(!(i&h)){__m512 l=a[i],u=a[i+h]; a[i]=_mm512_add_ps(l,u); a[i+h]=_mm512_sub_ps(l,u);}
      for(int k=0;k<4;k++) _mm512_storeu_ps(y+b+16*k,a[k]); }
}
int main(int argc,char**argv){
  int th=atoi(argv[1]); long xo=atol(argv[2]);
  float *bx=aligned_alloc(4096,N*4+8192), *by=aligned_alloc(4096,N*4+8192);
  for(long i=0;i<N+2048;i++){bx[i]=i*1e-7f; by[i]=0;}
  float *x=bx+xo/4, *y=by;
  omp_set_num_threads(th);
  for(int rep=0;rep<3;rep++) for (int R=4;R<=16;R*=2){
    double ts[15];
    for(int k=0;k<15;k++){ double t0=now();
      #pragma omp parallel
      { int t=omp_get_thread_num(), T=omp_get_num_threads(); long h=N/T; run(x+t*h,y+t*h,h,R);} 
      ts[k]=now()-t0; }
    for(int i=0;i<15;i++)for(int j=i+1;j<15;j++) if(ts[j]<ts[i]){double q=ts[i];ts[i]=ts[j];ts[j]=q;}
    printf("th %d xo %ld R %2d: %.3f ns/el\n",th,xo,R,ts[7]/N*1e9);
  }
}
